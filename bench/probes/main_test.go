//go:build linux

package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/vigild/vigil/probe"
	"go.uber.org/goleak"
)

// TestMain plays a server when re-executed by run, as main does.
func TestMain(m *testing.M) {
	if n := os.Getenv(serveEnv); n != "" {
		os.Exit(serve(n))
	}
	goleak.VerifyTestMain(m)
}

// TestRun runs the whole command small: its servers start and stop, its
// probes pass (run fails on no figure, but a failed attempt shows in the
// recorder, checked apart).
func TestRun(t *testing.T) {
	for _, o := range []options{
		{probes: 20, interval: 100 * time.Millisecond, timeout: time.Second, duration: 500 * time.Millisecond, servers: 2, kind: "http"},
		{probes: 5, interval: 100 * time.Millisecond, timeout: time.Second, duration: 300 * time.Millisecond, servers: 1, kind: "tcp", spread: true},
		{probes: 10, interval: 100 * time.Millisecond, duration: 300 * time.Millisecond, servers: 2, floor: true, spread: true},
	} {
		if err := run(context.Background(), o); err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
	}
}

func TestRecorder(t *testing.T) {
	r := newRecorder(time.Second)
	t0 := time.Unix(100, 0)
	r.window(t0, t0.Add(10*time.Second))
	r.add(probe.Result{Handle: 1, Passed: true, Time: t0.Add(-time.Second)}) // before the window
	r.add(probe.Result{Handle: 1, Passed: true, Time: t0.Add(10 * time.Millisecond), Duration: time.Millisecond})
	r.add(probe.Result{Handle: 1, Passed: false, Time: t0.Add(1030 * time.Millisecond), Duration: 3 * time.Millisecond})
	r.add(probe.Result{Handle: 2, Passed: true, Time: t0.Add(11 * time.Second)}) // after
	if r.inWindow != 2 || r.failed != 1 {
		t.Fatalf("in window %d, failed %d; want 2 and 1", r.inWindow, r.failed)
	}
	// Gaps: 1.01s (from the attempt before the window) and 1.02s.
	if len(r.deviations) != 2 || r.deviations[0] != 10*time.Millisecond || r.deviations[1] != 20*time.Millisecond {
		t.Fatalf("deviations %v", r.deviations)
	}
}

func TestStatTicks(t *testing.T) {
	if n, err := statTicks("self"); err != nil || n < 0 {
		t.Fatalf("statTicks(self) = %d, %v", n, err)
	}
	if _, err := statTicks("0"); err == nil {
		t.Fatal("statTicks of pid 0 did not fail")
	}
}
