package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/worker"
)

// retainedDuringSample keeps what the test allocates during a sample's
// window, so that the report has retained sites to list.
var retainedDuringSample [][]byte

// The original's tools read memory_sample's reply as its Ruby worker sends
// it: one final reply whose "data" is the report as a JSON string. The
// reply in testdata is the original worker's, from the captured session
// 10-forward-memory-sample of the protocol transcripts. A Go worker asked
// the same way must answer in the same shape (vigil's own keys may come
// alongside), and send nothing before its final reply.
func TestMemorySampleOriginalShape(t *testing.T) {
	raw, err := os.ReadFile("testdata/original_memory_sample_reply.json")
	if err != nil {
		t.Fatal(err)
	}
	var original map[string]any
	if err := json.Unmarshal(raw, &original); err != nil {
		t.Fatal(err)
	}

	sup, id := inProcess(t, worker.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				retainedDuringSample = append(retainedDuringSample, make([]byte, 1024))
			}
		}
	})
	var intermediate []string
	// The original's client sends exactly this: duration, nothing else.
	reply, err := sup.Call(ctx, id, "memory_sample", map[string]any{"duration": 1}, func(m *rpc.Message) error {
		intermediate = append(intermediate, m.String())
		return nil
	})
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(intermediate) > 0 {
		t.Errorf("the original sends one final reply; the Go worker sent %d before it: %v", len(intermediate), intermediate)
	}
	var got map[string]any
	if err := json.Unmarshal(reply.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, p := range sameShape("reply", original, got) {
		t.Error(p)
	}
	origData, _ := original["data"].(string)
	gotData, ok := got["data"].(string)
	if !ok {
		t.Fatalf("data is %T, want a JSON string as the original sends", got["data"])
	}
	var origReport, report map[string]any
	if err := json.Unmarshal([]byte(origData), &origReport); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(gotData), &report); err != nil {
		t.Fatalf("data is not a JSON report: %v: %.200s", err, gotData)
	}
	for _, p := range sameShape("data", origReport, report) {
		t.Error(p)
	}
	// vigil's keys alongside the original's.
	for _, k := range []string{"duration", "sample_rate", "by_function", "by_file", "by_location", "by_package"} {
		if _, ok := report[k]; !ok {
			t.Errorf("data lacks vigil's key %q", k)
		}
	}
	// The shape of a site's pair was checked only if there was one.
	var s worker.MemorySample
	if err := json.Unmarshal([]byte(gotData), &s); err != nil {
		t.Fatal(err)
	}
	pairs := 0
	for _, a := range s.Aggregates {
		pairs += len(a.Totals)
		if a.Total != s.TotalRetained {
			t.Errorf("aggregate %q total %+v, want the total retained %+v", a.Title, a.Total, s.TotalRetained)
		}
	}
	if len(s.Aggregates) != 4 || pairs == 0 {
		t.Errorf("%d aggregates with %d sites in all; want 4 with sites (the test retained memory during the window)", len(s.Aggregates), pairs)
	}
}

// With "stream": true, vigil's form: the "started" reply, then data as an
// object.
func TestMemorySampleStream(t *testing.T) {
	sup, id := inProcess(t, worker.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	started := 0
	reply, err := sup.Call(ctx, id, "memory_sample", map[string]any{"duration": 0.2, "stream": true}, func(m *rpc.Message) error {
		if m.GetBool("started") {
			started++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := reply.Get("data")
	var s worker.MemorySample
	if started != 1 || len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &s) != nil || s.Duration != 0.2 {
		t.Errorf("%d started replies; final %.300s", started, reply)
	}
	if _, err := sup.Call(ctx, id, "memory_sample", map[string]any{"duration": 0.1, "stream": "yes"}, nil); err == nil {
		t.Error("stream=\"yes\" was accepted")
	}
}

// sameShape lists where got differs in shape from the original: every key
// of an original object is present with a value of the same shape (got may
// have more keys), and every element of a got array has the shape of some
// element of the original's array.
func sameShape(path string, original, got any) []string {
	switch o := original.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %s, want an object", path, kind(got))}
		}
		var problems []string
		for k, ov := range o {
			gv, ok := g[k]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: no key %q", path, k))
				continue
			}
			problems = append(problems, sameShape(path+"."+k, ov, gv)...)
		}
		return problems
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %s, want an array", path, kind(got))}
		}
		var problems []string
		for i, gv := range g {
			if len(o) == 0 {
				break
			}
			var best []string
			for _, ov := range o {
				p := sameShape(fmt.Sprintf("%s[%d]", path, i), ov, gv)
				if len(p) == 0 {
					best = nil
					break
				}
				if best == nil || len(p) < len(best) {
					best = p
				}
			}
			problems = append(problems, best...)
		}
		return problems
	default:
		if kind(original) != kind(got) {
			return []string{fmt.Sprintf("%s: %s, want %s", path, kind(got), kind(original))}
		}
		return nil
	}
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
