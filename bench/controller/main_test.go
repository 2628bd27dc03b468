//go:build linux

package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMedianP95(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if m := median(d); m != 51*time.Millisecond {
		t.Errorf("median = %v, want 51ms", m)
	}
	if p := p95(d); p != 95*time.Millisecond {
		t.Errorf("p95 = %v, want 95ms", p)
	}
	if p := p95(d[:1]); p != time.Millisecond {
		t.Errorf("p95 of one = %v, want 1ms", p)
	}
}

func TestDiff(t *testing.T) {
	t0 := time.Unix(0, 0)
	a := sample{at: t0, ticks: 10, threads: map[int]thread{
		1: {comm: "vigil", switches: 100, runNS: 5e6},
		2: {comm: "vigil", switches: 7, runNS: 1e6},
	}}
	b := sample{at: t0.Add(10 * time.Second), ticks: 11, rssKiB: 2048, nThreads: 3, threads: map[int]thread{
		1: {comm: "vigil", switches: 110, runNS: 6e6},
		2: {comm: "vigil", switches: 7, runNS: 1e6},
		3: {comm: "vigil", switches: 5, runNS: 1e6}, // born in the window
	}}
	f := diff(a, b)
	if f.wakeups != 1.5 {
		t.Errorf("wakeups = %v, want 1.5 (15 switches in 10 s)", f.wakeups)
	}
	if f.cpuMsMin != 12 {
		t.Errorf("cpuMsMin = %v, want 12 (2 ms in 10 s)", f.cpuMsMin)
	}
	if f.ticksMsMin != 60 {
		t.Errorf("ticksMsMin = %v, want 60 (one 10 ms tick in 10 s)", f.ticksMsMin)
	}
	if f.threads != 3 || f.rssKiB != 2048 {
		t.Errorf("threads, rss = %d, %d; want 3, 2048", f.threads, f.rssKiB)
	}
	if len(f.perThread) != 2 || !strings.HasPrefix(f.perThread[0], "1:") {
		t.Errorf("perThread = %q; want thread 1 first, then 3", f.perThread)
	}
}

// TestRunSmall runs the whole command, small: it builds vigil and the
// worker, starts, idles, kills and stops, and must leave nothing behind
// (run checks for left-over processes itself and fails if any).
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs vigil")
	}
	defer goleak.VerifyNone(t)
	stdout := os.Stdout
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	os.Stdout = devnull
	defer func() { os.Stdout = stdout }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = run(ctx, options{workers: 3, kills: 3, starts: 2, idle: 300 * time.Millisecond, pause: 20 * time.Millisecond, breakdown: true})
	if err != nil {
		t.Fatal(err)
	}
}
