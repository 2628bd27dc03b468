package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/worker"
)

// sampleRows is how many places of a memory sample the table lists.
const sampleRows = 20

// sampleTable lays out a memory sample (vigil's form, a JSON object): the
// totals, then the places that retained most. A report it cannot read is
// printed as it came.
func sampleTable(raw json.RawMessage, target *statusview.Worker) []byte {
	var s worker.MemorySample
	if err := json.Unmarshal(raw, &s); err != nil {
		return append(bytes.Clone(raw), '\n')
	}
	var b bytes.Buffer
	rate := "every allocation recorded"
	if s.SampleRate != 1 {
		rate = fmt.Sprintf("one allocation in %d bytes recorded: the figures are estimates", s.SampleRate)
	}
	fmt.Fprintf(&b, "memory sample of %s over %gs (%s)\n", target.Describe(), s.Duration, rate)
	fmt.Fprintf(&b, "allocated %s in %d objects; still live at the end: %s in %d objects\n\n",
		statusview.FormatSize(float64(s.TotalAllocated.Size)), s.TotalAllocated.Count,
		statusview.FormatSize(float64(s.TotalRetained.Size)), s.TotalRetained.Count)
	if len(s.ByLocation) == 0 {
		b.WriteString("nothing was allocated\n")
		return b.Bytes()
	}
	t := &table{
		headers: []string{"RETAINED", "OBJECTS", "ALLOCATED", "OBJECTS", "LOCATION"},
		minW:    []int{0, 0, 0, 0, 0},
		right:   []bool{true, true, true, true, false},
	}
	for i, e := range s.ByLocation {
		if i == sampleRows {
			break
		}
		t.add([]string{statusview.FormatSize(float64(e.Retained.Size)), strconv.FormatInt(e.Retained.Count, 10),
			statusview.FormatSize(float64(e.Allocated.Size)), strconv.FormatInt(e.Allocated.Count, 10), e.Name}, nil)
	}
	t.write(&b, false)
	if n := len(s.ByLocation); n > sampleRows {
		fmt.Fprintf(&b, "... and %d more places (--output json for all, by function, file and package too)\n", n-sampleRows)
	}
	return b.Bytes()
}
