//go:build linux

package container

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"
)

// exitsOf returns a service's exit counts from the container's statistics.
func exitsOf(c *Container, service string) []ExitCount {
	for _, st := range c.Statistics() {
		if st.Service == service {
			return st.Exits
		}
	}
	return nil
}

// countExits adds up the counts of an instance for a reason (code -2: any).
func countExits(exits []ExitCount, instance int, reason string, code int, signal string) uint64 {
	var n uint64
	for _, e := range exits {
		if e.Instance == instance && e.Reason == reason && (code == -2 || e.Code == code) && e.Signal == signal {
			n += e.Count
		}
	}
	return n
}

// TestExitsCountedByReason: a crash counts as an exit with its code, a
// signal from outside by its name, a startup timeout as such, and the
// processes vigil stops as stopped; a spawn that fails as spawn_failed.
func TestExitsCountedByReason(t *testing.T) {
	crash := helperSpec("crash", "crash", 1)
	crash.RestartDelay, crash.RestartDelayMax = 100*time.Millisecond, time.Second
	silent := helperSpec("silent", "silent", 1)
	silent.StartupTimeout = 300 * time.Millisecond
	ready := helperSpec("ready", "ready", 2)
	missing := Spec{Name: "missing", Command: []string{"/nonexistent/vigil-test-command"}, Restart: true,
		RestartDelay: 50 * time.Millisecond, RestartDelayMax: 100 * time.Millisecond}
	c := startContainer(t, []Spec{crash, silent, ready, missing}, Options{})

	eventually(t, "two crashes counted as exit 1", func() bool {
		return countExits(exitsOf(c, "crash"), 0, ExitCode, 1, "") >= 2
	})
	eventually(t, "a startup timeout counted", func() bool {
		return countExits(exitsOf(c, "silent"), 0, ExitStartupTimeout, -1, "") >= 1
	})
	eventually(t, "a failed spawn counted", func() bool {
		return countExits(exitsOf(c, "missing"), 0, ExitSpawnFailed, -1, "") >= 1
	})

	// A signal from outside: SIGHUP (the helper leaves it to its default
	// action, death) to instance 1 of ready.
	var pid int
	eventually(t, "ready.1 running", func() bool {
		for _, ch := range c.Children() {
			if ch.Service == "ready" && ch.Instance == 1 && ch.State == StateReady {
				pid = ch.PID
				return true
			}
		}
		return false
	})
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the SIGHUP counted for instance 1", func() bool {
		return countExits(exitsOf(c, "ready"), 1, ExitSignal, -1, "SIGHUP") == 1
	})
	if n := countExits(exitsOf(c, "ready"), 0, ExitSignal, -1, "SIGHUP"); n != 0 {
		t.Errorf("instance 0 has %d SIGHUP exits, want 0", n)
	}

	// A restart stops the old process: stopped, not a failure.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.RestartChildren(ctx, "ready", 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replaced process counted as stopped", func() bool {
		return countExits(exitsOf(c, "ready"), 0, ExitStopped, -1, "") == 1
	})

	exits := exitsOf(c, "ready")
	if !slices.IsSortedFunc(exits, func(a, b ExitCount) int { return a.Instance - b.Instance }) {
		t.Errorf("exits not sorted by instance: %+v", exits)
	}
}

// TestReadyLatencyRecorded: each process's first ready is counted in the
// service's latency histogram (cumulative), and its time kept by instance.
func TestReadyLatencyRecorded(t *testing.T) {
	spec := helperSpec("slow", "ready", 2, "READY_DELAY=300ms")
	before := time.Now()
	c := startContainer(t, []Spec{spec}, Options{})
	waitReady(t, c)
	st := c.Statistics()[0]
	h := st.ReadyLatency
	if h.Count != 2 {
		t.Fatalf("ready latency count %d, want 2: %+v", h.Count, h)
	}
	if h.Sum < 0.6 || h.Sum > 20 {
		t.Errorf("ready latency sum %.3fs, want at least 2 × 300ms", h.Sum)
	}
	if len(h.Counts) != len(ReadyLatencyBounds) || len(h.Bounds) != len(ReadyLatencyBounds) {
		t.Fatalf("histogram has %d counts, %d bounds, want %d", len(h.Counts), len(h.Bounds), len(ReadyLatencyBounds))
	}
	for i, b := range h.Bounds {
		switch {
		case b < 0.3 && h.Counts[i] != 0:
			t.Errorf("bucket le=%g counts %d, want 0 (each took 300ms or more)", b, h.Counts[i])
		case i > 0 && h.Counts[i] < h.Counts[i-1]:
			t.Errorf("counts not cumulative: %v", h.Counts)
		}
	}
	if last := h.Counts[len(h.Counts)-1]; last != 2 {
		t.Errorf("le=%g counts %d, want 2", h.Bounds[len(h.Bounds)-1], last)
	}
	for i := range 2 {
		at, ok := st.ReadyAt[i]
		if !ok || at.Before(before.Add(300*time.Millisecond)) || at.After(time.Now()) {
			t.Errorf("ready_at of instance %d = %v (%v), want after the start + 300ms", i, at, ok)
		}
	}
}

// TestOOMWatch: a SIGKILL is taken for the out-of-memory killer's only
// while its count rose, once per kill.
func TestOOMWatch(t *testing.T) {
	n := uint64(5)
	w := newOOMWatch(func() (uint64, bool) { return n, true })
	if w.claim() {
		t.Fatal("claimed with no kill counted")
	}
	n = 7
	first := w.claim()
	second := w.claim()
	if !first || !second {
		t.Fatal("two kills counted, not both claimed")
	}
	if w.claim() {
		t.Fatal("a third claim for two kills")
	}
	unreadable := newOOMWatch(func() (uint64, bool) { return 0, false })
	if unreadable.claim() {
		t.Fatal("claimed without a count")
	}
	var none *oomWatch
	if none.claim() {
		t.Fatal("a nil watch claimed")
	}
}

// TestExitReasonOfKill: a SIGKILL from outside is "signal" unless the
// out-of-memory killer's count rose.
func TestExitReasonOfKill(t *testing.T) {
	count := uint64(0)
	s := &serviceStats{oom: newOOMWatch(func() (uint64, bool) { return count, true })}
	kill := ExitStatus{Code: -1, Signal: syscall.SIGKILL}
	s.exited(0, false, "", kill)
	count++
	s.exited(0, false, "", kill)
	s.exited(1, false, "health check timeout", kill)
	s.exited(1, true, "", ExitStatus{Code: 0})
	s.exited(2, false, "", ExitStatus{Code: 3})
	got := s.snapshot("x", time.Now()).Exits
	want := []ExitCount{
		{Instance: 0, Reason: ExitOOM, Code: -1, Signal: "SIGKILL", Count: 1},
		{Instance: 0, Reason: ExitSignal, Code: -1, Signal: "SIGKILL", Count: 1},
		{Instance: 1, Reason: ExitHealthCheckTimeout, Code: -1, Count: 1},
		{Instance: 1, Reason: ExitStopped, Code: -1, Count: 1},
		{Instance: 2, Reason: ExitCode, Code: 3, Count: 1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("exits:\n got %+v\nwant %+v", got, want)
	}
}
