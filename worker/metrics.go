package worker

import (
	"context"
	"math"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"github.com/vigild/vigil/rpc"
)

// readMetrics reads the runtime/metrics values whose names keep(name) says,
// as JSON-ready values: numbers for scalars, a [Histogram] for histograms.
func readMetrics(keep func(string) bool) map[string]any {
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if keep(d.Name) {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	out := make(map[string]any, len(samples))
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			out[s.Name] = s.Value.Uint64()
		case metrics.KindFloat64:
			out[s.Name] = jsonFloat(s.Value.Float64())
		case metrics.KindFloat64Histogram:
			out[s.Name] = newHistogram(s.Value.Float64Histogram())
		}
	}
	return out
}

// jsonFloat returns f, or a string for the values JSON cannot hold.
func jsonFloat(f float64) any {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return f
}

// Histogram is a runtime/metrics histogram in JSON: its total count,
// quantiles estimated from bucket bounds, and its non-empty buckets as
// [lower, upper, count].
type Histogram struct {
	// Count is the number of values recorded.
	Count uint64 `json:"count"`
	// P50, P90, P99 and Max are estimated quantiles (numbers, or "+Inf").
	P50 any `json:"p50"`
	P90 any `json:"p90"` // 90th percentile, in the metric's unit
	P99 any `json:"p99"` // 99th percentile, in the metric's unit
	Max any `json:"max"` // bound of the largest value's bucket
	// Buckets are the non-empty buckets as [lower, upper, count].
	Buckets [][]any `json:"buckets"`
}

func newHistogram(h *metrics.Float64Histogram) Histogram {
	out := Histogram{Buckets: [][]any{}}
	for i, c := range h.Counts {
		out.Count += c
		if c > 0 {
			out.Buckets = append(out.Buckets, []any{jsonFloat(h.Buckets[i]), jsonFloat(h.Buckets[i+1]), c})
		}
	}
	out.P50 = jsonFloat(quantile(h, 0.5))
	out.P90 = jsonFloat(quantile(h, 0.9))
	out.P99 = jsonFloat(quantile(h, 0.99))
	out.Max = jsonFloat(quantile(h, 1))
	return out
}

// quantile estimates the q quantile as the upper bound of the bucket that
// holds it (its lower bound when the upper is infinite); 0 when empty.
func quantile(h *metrics.Float64Histogram, q float64) float64 {
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank == 0 {
		rank = 1
	}
	var cum uint64
	for i, c := range h.Counts {
		cum += c
		if cum >= rank {
			if math.IsInf(h.Buckets[i+1], 1) {
				return h.Buckets[i]
			}
			return h.Buckets[i+1]
		}
	}
	return h.Buckets[len(h.Buckets)-1]
}

func (d *Diagnostics) runtimeMetrics(ctx context.Context, req *request) (result, error) {
	return jsonResult(map[string]any{"metrics": readMetrics(func(string) bool { return true })})
}

func (d *Diagnostics) schedulerDump(ctx context.Context, req *request) (result, error) {
	return jsonResult(map[string]any{
		"goroutines": runtime.NumGoroutine(),
		"gomaxprocs": runtime.GOMAXPROCS(0),
		"num_cpu":    runtime.NumCPU(),
		"cgo_calls":  runtime.NumCgoCall(),
		"metrics": readMetrics(func(name string) bool {
			return strings.HasPrefix(name, "/sched/") || strings.HasPrefix(name, "/sync/")
		}),
	})
}

// gcSnapshot is the state at garbage_profile_start.
type gcSnapshot struct {
	at time.Time
	ms runtime.MemStats
}

// GarbageProfile is the report of garbage_profile_stop: the collector's
// activity between start and stop. Pause quantiles come from the last
// (at most 256) pauses the runtime remembers; PausesSampled says whether
// there were more.
type GarbageProfile struct {
	// Duration is the time between start and stop, in seconds.
	Duration float64 `json:"duration"`
	// Collections and ForcedCollections count the GC cycles that ended,
	// all of them and those forced by runtime.GC.
	Collections       uint32 `json:"collections"`
	ForcedCollections uint32 `json:"forced_collections"` // by runtime.GC
	// PauseTotal is the stop-the-world time of those cycles, in seconds.
	PauseTotal float64 `json:"pause_total_seconds"`
	// Pauses summarises the individual pauses, in seconds.
	Pauses struct {
		Count   int     `json:"count"`
		Sampled bool    `json:"sampled"`
		P50     float64 `json:"p50_seconds"`
		P90     float64 `json:"p90_seconds"`
		P99     float64 `json:"p99_seconds"`
		Max     float64 `json:"max_seconds"`
	} `json:"pauses"`
	// HeapGoal is the heap size at which the next cycle starts.
	HeapGoal Span `json:"heap_goal_bytes"`
	// HeapLive is the allocated heap (runtime.MemStats.HeapAlloc).
	HeapLive Span `json:"heap_alloc_bytes"`
	// AllocatedBytes, AllocatedObjects and FreedObjects are the allocation
	// activity between start and stop.
	AllocatedBytes   uint64 `json:"allocated_bytes"`
	AllocatedObjects uint64 `json:"allocated_objects"` // objects allocated (Mallocs)
	FreedObjects     uint64 `json:"freed_objects"`     // objects freed (Frees)
	// GCCPUFraction is the fraction of CPU time used by the GC since the
	// program started, at stop.
	GCCPUFraction float64 `json:"gc_cpu_fraction"`
}

// Span is a figure at the start and at the end of a profile.
type Span struct {
	// Start is the figure at garbage_profile_start, End at the stop.
	Start uint64 `json:"start"`
	End   uint64 `json:"end"` // the figure at garbage_profile_stop
}

func (d *Diagnostics) garbageProfileStart(ctx context.Context, call *rpc.Call) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gcStart != nil {
		return alreadyRunning("garbage_profile_start", "a garbage profile was started and not stopped")
	}
	s := &gcSnapshot{at: time.Now()}
	runtime.ReadMemStats(&s.ms)
	d.gcStart = s
	return call.Finish(map[string]any{"started": true})
}

func (d *Diagnostics) garbageProfileStop(ctx context.Context, req *request) (result, error) {
	d.mu.Lock()
	start := d.gcStart
	d.gcStart = nil
	d.mu.Unlock()
	if start == nil {
		return result{}, &opError{rpc.Errorf("RuntimeError", "%s: garbage profile %s: call garbage_profile_start first", req.op, ErrNotRunning.Error()), ErrNotRunning}
	}
	var end runtime.MemStats
	runtime.ReadMemStats(&end)
	return jsonResult(gcReport(&start.ms, &end, time.Since(start.at)))
}

func gcReport(a, b *runtime.MemStats, elapsed time.Duration) *GarbageProfile {
	p := &GarbageProfile{
		Duration:          elapsed.Seconds(),
		Collections:       b.NumGC - a.NumGC,
		ForcedCollections: b.NumForcedGC - a.NumForcedGC,
		PauseTotal:        time.Duration(b.PauseTotalNs - a.PauseTotalNs).Seconds(),
		HeapGoal:          Span{a.NextGC, b.NextGC},
		HeapLive:          Span{a.HeapAlloc, b.HeapAlloc},
		AllocatedBytes:    b.TotalAlloc - a.TotalAlloc,
		AllocatedObjects:  b.Mallocs - a.Mallocs,
		FreedObjects:      b.Frees - a.Frees,
		GCCPUFraction:     b.GCCPUFraction,
	}
	n := int(p.Collections)
	ring := len(b.PauseNs)
	if n > ring {
		n = ring
		p.Pauses.Sampled = true
	}
	pauses := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		// the most recent pause is at (NumGC+255)%256
		j := (int(b.NumGC) - 1 - i + ring) % ring
		pauses = append(pauses, time.Duration(b.PauseNs[j]).Seconds())
	}
	slices.Sort(pauses)
	p.Pauses.Count = len(pauses)
	if len(pauses) > 0 {
		at := func(q float64) float64 {
			i := int(math.Ceil(q*float64(len(pauses)))) - 1
			return pauses[max(i, 0)]
		}
		p.Pauses.P50, p.Pauses.P90, p.Pauses.P99 = at(0.5), at(0.9), at(0.99)
		p.Pauses.Max = pauses[len(pauses)-1]
	}
	return p
}
