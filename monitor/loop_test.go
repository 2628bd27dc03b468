package monitor

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigild/vigil/procmetrics"
	"github.com/vigild/vigil/supervisor"
)

// fakeClock jumps to each wake time at once and records it; hook, if set,
// runs at each wake (to cancel the loop after some).
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	wakes []time.Time
	hook  func(n int)
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
	}
	c.wakes = append(c.wakes, t)
	n, hook := len(c.wakes), c.hook
	c.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return ctx.Err()
}

func TestNextAligned(t *testing.T) {
	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		now      time.Time
		interval time.Duration
		want     time.Time
	}{
		{base.Add(3500 * time.Millisecond), 10 * time.Second, base.Add(10 * time.Second)},
		{base, 10 * time.Second, base.Add(10 * time.Second)}, // strictly after
		{base.Add(59 * time.Second), time.Minute, base.Add(time.Minute)},
		{base.Add(1234 * time.Millisecond), time.Second, base.Add(2 * time.Second)},
	} {
		if got := nextAligned(c.now, c.interval); !got.Equal(c.want) {
			t.Errorf("nextAligned(%v, %v) = %v, want %v", c.now, c.interval, got, c.want)
		}
	}
}

func TestRunAlignedSurvivesFailingBody(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 3, 500_000_000, time.UTC)
	clk := &fakeClock{now: start}
	logger, logs := testLogger()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err := runAligned(ctx, clk, 10*time.Second, logger, "test body", func(ctx context.Context) error {
		calls++
		switch calls {
		case 1:
			return errors.New("first failure")
		case 2:
			panic("second failure")
		case 4:
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("runAligned returned %v, want context.Canceled", err)
	}
	if calls != 4 {
		t.Errorf("body called %d times, want 4", calls)
	}
	for i, w := range clk.wakes[:4] {
		want := start.Truncate(10 * time.Second).Add(time.Duration(i+1) * 10 * time.Second)
		if !w.Equal(want) {
			t.Errorf("wake %d at %v, want %v", i, w, want)
		}
	}
	for _, want := range []string{"test body failed", "first failure", "panic: second failure"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

// fakeSource is a memorySource counting its reads.
type fakeSource struct {
	mu                sync.Mutex
	resident, private int
}

func (f *fakeSource) Resident(pid int) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resident++
	return 1 << 20, nil
}

func (f *fakeSource) Figures(pid int) (figures, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.private++
	return figures{private: 1 << 20}, nil
}

func (f *fakeSource) Forget(pid int) {}
func (f *fakeSource) Close()         {}

func (f *fakeSource) HostMemory() (procmetrics.HostMemory, error) {
	return procmetrics.HostMemory{}, errors.New("unused")
}

func TestMemoryLoopWakesAtPollAndFullTimes(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 300_000_000, time.UTC)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := &fakeClock{now: start, hook: func(n int) {
		if n == 25 {
			cancel()
		}
	}}
	src := &fakeSource{}
	m := NewMemory(MemoryOptions{Interval: 10 * time.Second, clock: clk, source: src})
	m.procs[42] = &tracked{pid: 42, conns: nilConns, limits: m.limitsFor("")}
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// One wake a second, on the second; the full check at 12:00:10 and
	// 12:00:20 reads the private size.
	for i, w := range clk.wakes {
		want := start.Truncate(time.Second).Add(time.Duration(i+1) * time.Second)
		if !w.Equal(want) {
			t.Fatalf("wake %d at %v, want %v", i, w, want)
		}
	}
	if src.resident != 24 || src.private != 2 {
		t.Errorf("%d resident and %d private reads, want 24 and 2", src.resident, src.private)
	}
	if p := m.Snapshot().Processes["42"]; p.SampleCount != 2 {
		t.Errorf("sample count %d, want 2", p.SampleCount)
	}
}

// nilConns stands for one registered connection in tests that track a
// process without a server.
var nilConns = []*supervisor.Connection{nil}
