package worker

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"
	"github.com/vigild/vigil/rpc"
)

// MemorySample is the report of memory_sample: the allocations made during
// the window, and those of them still live after a collection at its end.
// Allocations are attributed to their site: the innermost frame of their
// stack outside package runtime.
type MemorySample struct {
	// Duration is the window in seconds.
	Duration float64 `json:"duration"`
	// SampleRate is runtime.MemProfileRate during the window (1: every
	// allocation was recorded; larger: figures are estimates).
	SampleRate int `json:"sample_rate"`
	// TotalAllocated counts what was allocated during the window.
	TotalAllocated Amount `json:"total_allocated"`
	// TotalRetained counts what of it is still live at the end.
	TotalRetained Amount `json:"total_retained"`
	// ByFunction lists the sites by function, most retained first (then
	// most allocated), at most the call's "limit" entries; ByFile,
	// ByLocation ("file:line") and ByPackage likewise.
	ByFunction []SiteAmount `json:"by_function"`
	ByFile     []SiteAmount `json:"by_file"`     // by source file
	ByLocation []SiteAmount `json:"by_location"` // by "file:line"
	ByPackage  []SiteAmount `json:"by_package"`  // by package path
	// Aggregates are the same sites in the original's layout, which its
	// tools read: retained figures only, titled "By Package" (the
	// original's "By Gem"), "By File", "By Location" and "By Function".
	Aggregates []Aggregate `json:"aggregates"`
}

// Aggregate is one of the original's aggregates: what was retained, in
// total and per site.
type Aggregate struct {
	// Title names the grouping ("By File").
	Title string `json:"title"`
	// Total is what was retained in all.
	Total Amount `json:"total"`
	// Totals are the sites that retained something, most first; each is
	// written as the original writes it, a pair [name, {size, count}].
	Totals []NamedAmount `json:"totals"`
}

// NamedAmount is an amount of one site; it is a JSON pair [name, amount].
type NamedAmount struct {
	// Name is the site.
	Name string
	// Amount is what it retained.
	Amount Amount
}

// MarshalJSON writes [name, {"size", "count"}].
func (n NamedAmount) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{n.Name, n.Amount})
}

// UnmarshalJSON reads [name, {"size", "count"}].
func (n *NamedAmount) UnmarshalJSON(b []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	if len(pair) != 2 {
		return fmt.Errorf("a named amount is a pair [name, amount], got %d elements", len(pair))
	}
	if err := json.Unmarshal(pair[0], &n.Name); err != nil {
		return err
	}
	return json.Unmarshal(pair[1], &n.Amount)
}

// Amount is a number of objects and their size in bytes.
type Amount struct {
	// Size is in bytes.
	Size int64 `json:"size"`
	// Count is the number of objects.
	Count int64 `json:"count"`
}

// SiteAmount is what one site allocated and retained.
type SiteAmount struct {
	// Name is the function, file, "file:line" or package.
	Name string `json:"name"`
	// Allocated and Retained are the site's share of the totals.
	Allocated Amount `json:"allocated"`
	Retained  Amount `json:"retained"` // of TotalRetained: still live at the end
}

// heapValues are one stack's figures in a heap profile.
type heapValues struct{ allocObjects, allocSpace, inuseObjects, inuseSpace int64 }

const defaultSampleLimit = 50

func (d *Diagnostics) memorySample(ctx context.Context, req *request) (result, error) {
	rate := 1
	if raw, ok := req.msg.Get("sample_rate"); ok && string(raw) != "null" {
		n, err := strconv.Atoi(string(raw))
		if err != nil || n <= 0 {
			return result{}, rpc.ArgumentError("%s: sample_rate must be a positive integer of bytes, got %s", req.op, raw)
		}
		rate = n
	}
	limit := defaultSampleLimit
	if raw, ok := req.msg.Get("limit"); ok && string(raw) != "null" {
		n, err := strconv.Atoi(string(raw))
		if err != nil || n <= 0 {
			return result{}, rpc.ArgumentError("%s: limit must be a positive integer, got %s", req.op, raw)
		}
		limit = n
	}
	select {
	case heapSem <- struct{}{}:
	default:
		return result{}, alreadyRunning(req.op, "a memory sample is already being taken in this process")
	}
	defer func() { <-heapSem }()
	s, err := sampleMemory(ctx, req.duration, rate, limit, req.started)
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", req.op, err)
	}
	return jsonResult(s)
}

// sampleMemory takes the sample. The caller holds heapSem.
//
// With runtime.MemProfileRate set to rate for the whole window, it collects
// garbage and snapshots the heap profile (so the snapshot holds every
// allocation and free up to now), waits, collects again and snapshots
// again. Both snapshots are scaled at the same rate, so per stack the
// difference of the allocation counts is what was allocated during the
// window, and the difference of the in-use counts, clamped to [0, that],
// what of it is still live (frees of older objects on the same stack can
// only lower it).
func sampleMemory(ctx context.Context, window time.Duration, rate, limit int, started func()) (*MemorySample, error) {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = rate
	defer func() { runtime.MemProfileRate = old }()

	runtime.GC()
	before, err := heapSnapshot()
	if err != nil {
		return nil, err
	}
	if started != nil {
		started()
	}
	if err := wait(ctx, "window", window); err != nil {
		return nil, err
	}
	runtime.GC()
	after, err := heapSnapshot()
	if err != nil {
		return nil, err
	}
	return diffSnapshots(before.values, after, window, rate, limit), nil
}

// snapshot is a heap profile, indexed by stack.
type snapshot struct {
	values map[string]heapValues
	prof   *profile.Profile
}

// ownFrame marks the sampler's own allocations, left out of the report.
const ownFrame = "github.com/vigild/vigil/worker.heapSnapshot"

// heapSnapshot reads the heap profile now.
//
//go:noinline
func heapSnapshot() (*snapshot, error) {
	var b bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&b, 0); err != nil {
		return nil, fmt.Errorf("heap profile: %w", err)
	}
	p, err := profile.Parse(&b)
	if err != nil {
		return nil, fmt.Errorf("heap profile: %w", err)
	}
	idx := [4]int{-1, -1, -1, -1}
	for i, st := range p.SampleType {
		switch st.Type {
		case "alloc_objects":
			idx[0] = i
		case "alloc_space":
			idx[1] = i
		case "inuse_objects":
			idx[2] = i
		case "inuse_space":
			idx[3] = i
		}
	}
	for _, i := range idx {
		if i < 0 {
			return nil, fmt.Errorf("heap profile: unexpected sample types %v", p.SampleType)
		}
	}
	s := &snapshot{values: make(map[string]heapValues, len(p.Sample)), prof: p}
	for _, smp := range p.Sample {
		k := stackKey(smp)
		v := s.values[k]
		v.allocObjects += smp.Value[idx[0]]
		v.allocSpace += smp.Value[idx[1]]
		v.inuseObjects += smp.Value[idx[2]]
		v.inuseSpace += smp.Value[idx[3]]
		s.values[k] = v
	}
	return s, nil
}

func stackKey(s *profile.Sample) string {
	var b strings.Builder
	for _, l := range s.Location {
		b.WriteString(strconv.FormatUint(l.Address, 16))
		b.WriteByte(' ')
	}
	return b.String()
}

// site is where a sample's allocation was made.
type site struct{ function, file, location, pkg string }

func siteOf(s *profile.Sample) (site, bool) {
	var first *profile.Line
	for _, l := range s.Location {
		for i := range l.Line {
			ln := &l.Line[i]
			if ln.Function == nil {
				continue
			}
			if strings.HasPrefix(ln.Function.Name, ownFrame) {
				return site{}, false
			}
			if first == nil && !strings.HasPrefix(ln.Function.Name, "runtime.") {
				first = ln
			}
		}
	}
	if first == nil {
		return site{function: "runtime", file: "?", location: "?", pkg: "runtime"}, true
	}
	f := first.Function
	return site{
		function: f.Name,
		file:     f.Filename,
		location: f.Filename + ":" + strconv.FormatInt(first.Line, 10),
		pkg:      packageOf(f.Name),
	}, true
}

// packageOf returns the import path of a function's fully qualified name
// ("example.com/a/b.(*T).M" → "example.com/a/b"). The linker writes the
// dots of the path's last element as "%2e" ("gopkg.in/yaml%2ev3.f"), which
// is undone.
func packageOf(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	if dot := strings.IndexByte(fn[slash+1:], '.'); dot >= 0 {
		fn = fn[:slash+1+dot]
	}
	return strings.ReplaceAll(fn, "%2e", ".")
}

func diffSnapshots(before map[string]heapValues, after *snapshot, window time.Duration, rate, limit int) *MemorySample {
	s := &MemorySample{Duration: window.Seconds(), SampleRate: rate}
	aggs := [4]map[string]*SiteAmount{{}, {}, {}, {}}
	seen := make(map[string]bool, len(after.prof.Sample))
	for _, smp := range after.prof.Sample {
		k := stackKey(smp)
		if seen[k] { // values are summed per stack already
			continue
		}
		seen[k] = true
		a, b := after.values[k], before[k]
		alloc := Amount{Count: a.allocObjects - b.allocObjects, Size: a.allocSpace - b.allocSpace}
		if alloc.Count <= 0 {
			continue
		}
		kept := Amount{
			Count: min(max(a.inuseObjects-b.inuseObjects, 0), alloc.Count),
			Size:  min(max(a.inuseSpace-b.inuseSpace, 0), max(alloc.Size, 0)),
		}
		st, ok := siteOf(smp)
		if !ok {
			continue
		}
		add(&s.TotalAllocated, alloc)
		add(&s.TotalRetained, kept)
		for i, name := range [4]string{st.function, st.file, st.location, st.pkg} {
			e := aggs[i][name]
			if e == nil {
				e = &SiteAmount{Name: name}
				aggs[i][name] = e
			}
			add(&e.Allocated, alloc)
			add(&e.Retained, kept)
		}
	}
	s.ByFunction = top(aggs[0], limit)
	s.ByFile = top(aggs[1], limit)
	s.ByLocation = top(aggs[2], limit)
	s.ByPackage = top(aggs[3], limit)
	s.Aggregates = []Aggregate{
		retained("By Package", s.TotalRetained, s.ByPackage),
		retained("By File", s.TotalRetained, s.ByFile),
		retained("By Location", s.TotalRetained, s.ByLocation),
		retained("By Function", s.TotalRetained, s.ByFunction),
	}
	return s
}

// retained is an aggregate of the original's layout: the sites that
// retained something, in the order given (most retained first).
func retained(title string, total Amount, sites []SiteAmount) Aggregate {
	a := Aggregate{Title: title, Total: total, Totals: []NamedAmount{}}
	for _, s := range sites {
		if s.Retained.Count > 0 {
			a.Totals = append(a.Totals, NamedAmount{Name: s.Name, Amount: s.Retained})
		}
	}
	return a
}

func add(a *Amount, b Amount) { a.Size += b.Size; a.Count += b.Count }

func top(m map[string]*SiteAmount, limit int) []SiteAmount {
	out := make([]SiteAmount, 0, len(m))
	for _, e := range m {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b SiteAmount) int {
		return cmp.Or(
			cmp.Compare(b.Retained.Size, a.Retained.Size),
			cmp.Compare(b.Allocated.Size, a.Allocated.Size),
			strings.Compare(a.Name, b.Name))
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}
