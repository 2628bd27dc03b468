package metrics

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/control"
	"github.com/vigild/vigil/monitor"
	"github.com/vigild/vigil/procmetrics"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// fleet is what a scrape of n workers reads: the controller's children
// and statistics, the process monitor's capture, the supervisor's counts.
func fleet(n int) (control.Children, monitor.ProcessStatus) {
	now := time.Now()
	kids := control.Children{Statistics: map[string]container.Statistics{}}
	proc := monitor.ProcessStatus{Metrics: map[string]*procmetrics.Process{}, CapturedAt: now}
	st := container.Statistics{Service: "web", ReadyAt: map[int]time.Time{},
		ReadyLatency: container.Histogram{Bounds: container.ReadyLatencyBounds, Counts: make([]uint64, len(container.ReadyLatencyBounds))}}
	for i := range n {
		started := now.Add(-time.Hour)
		up := 3600.0
		pid := 10000 + i
		kids.Children = append(kids.Children, control.Child{Service: "web", Instance: i, PID: pid, State: "ready", StartedAt: &started, Uptime: &up})
		st.ReadyAt[i] = started.Add(time.Second)
		st.Exits = append(st.Exits, container.ExitCount{Instance: i, Reason: container.ExitStopped, Code: -1, Count: 1})
		proc.Metrics[strconv.Itoa(pid)] = &procmetrics.Process{ProcessID: pid, ResidentSize: 10 << 20, ProcessorTime: 1.5,
			Memory: &procmetrics.Memory{PrivateDirtySize: 2 << 20, ProportionalSize: 4 << 20}}
	}
	kids.Statistics["web"] = st
	return kids, proc
}

// BenchmarkBuild: the families of 1,000 workers from what was read, and
// their encoding in the text format.
func BenchmarkBuild(b *testing.B) {
	kids, proc := fleet(1000)
	stats := supervisor.Stats{Forward: map[string]supervisor.Histogram{}}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		s := scrape{stats: &stats, children: &kids, proc: &proc, sources: map[string]bool{"controller": true}}
		var bl builder
		s.build(&bl, time.Now())
		fams := merge(nil, bl.families, nil, nil)
		buf.Reset()
		enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range fams {
			if err := enc.Encode(mf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes")
}

// BenchmarkDecodeChildren: the controller's reply of 1,000 children,
// decoded.
func BenchmarkDecodeChildren(b *testing.B) {
	kids, _ := fleet(1000)
	line, err := json.Marshal(kids)
	if err != nil {
		b.Fatal(err)
	}
	m, err := rpc.Parse(append([]byte(`{"id":3,"finished":true,`), line[1:]...))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var c control.Children
		if err := m.Decode(&c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(line)), "bytes")
}

// BenchmarkDecodeParts: the children alone (statusview's scanner), and
// the statistics alone (encoding/json).
func BenchmarkDecodeParts(b *testing.B) {
	kids, _ := fleet(1000)
	line, _ := json.Marshal(kids)
	m, _ := rpc.Parse(append([]byte(`{"id":3,"finished":true,`), line[1:]...))
	raw, _ := m.Get("children")
	_ = raw
	b.Run("metrics", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeChildren(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("statistics", func(b *testing.B) {
		for b.Loop() {
			var st map[string]container.Statistics
			if err := m.DecodeField("statistics", &st); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBuildOnly: the families alone, not encoded.
func BenchmarkBuildOnly(b *testing.B) {
	kids, proc := fleet(1000)
	stats := supervisor.Stats{Forward: map[string]supervisor.Histogram{}}
	for b.Loop() {
		s := scrape{stats: &stats, children: &kids, proc: &proc, sources: map[string]bool{"controller": true}}
		var bl builder
		s.build(&bl, time.Now())
	}
}
