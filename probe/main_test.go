package probe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv names the helper command a re-executed test binary plays.
const helperEnv = "VIGIL_PROBE_TEST_HELPER"

// helpers are the commands the test binary plays when re-executed, as in
// os/exec's tests.
var helpers = map[string]func() int{}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
			os.Exit(2)
		}
		os.Exit(h())
	}
	goleak.VerifyTestMain(m)
}

// wait is how long a test waits for something that should happen at once:
// generous, for a loaded machine.
const wait = 10 * time.Second

// fakeClock moves only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer() timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock by d and fires the timers due by then.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if t.armed && !t.at.After(c.now) {
			t.fire()
		}
	}
}

type fakeTimer struct {
	c     *fakeClock
	ch    chan time.Time
	at    time.Time
	armed bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.drain()
	t.at, t.armed = t.c.now.Add(d), true
	if d <= 0 {
		t.fire()
	}
}

func (t *fakeTimer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.drain()
	t.armed = false
}

func (t *fakeTimer) drain() {
	select {
	case <-t.ch:
	default:
	}
}

// fire sends the time; the caller holds the clock's lock.
func (t *fakeTimer) fire() {
	t.armed = false
	select {
	case t.ch <- t.c.now:
	default:
	}
}

// counts is what the scheduler's loop holds, for tests.
type counts struct {
	registered, inHeap, waiting, running, pending, draining, workers int
}

func (s *Scheduler) counts() counts {
	var c counts
	s.do(func(st *state) {
		c.registered, c.inHeap, c.draining = len(st.entries), st.heap.len()-st.heap.stale, len(st.draining)
		for _, e := range st.out.items[st.out.head:] {
			if e.pending {
				c.pending++
			}
		}
		for _, l := range st.lanes {
			c.waiting += l.waiting.len()
			c.running += l.running
			c.workers += l.workers
		}
	})
	return c
}

// next receives the next result, failing the test after wait.
func next(t *testing.T, s *Scheduler) Result {
	t.Helper()
	select {
	case r, ok := <-s.Results():
		if !ok {
			t.Fatal("Results closed")
		}
		return r
	case <-time.After(wait):
		t.Fatalf("no result after %v", wait)
	}
	return Result{}
}

// none asserts that no result is received for a while (a short time:
// the exact checks come from counts; this one only adds to them).
func none(t *testing.T, s *Scheduler) {
	t.Helper()
	select {
	case r := <-s.Results():
		t.Fatalf("unexpected result %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
}

// eventually polls cond until it holds, failing the test after wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeChecker hands each attempt to the test, which answers it.
type fakeChecker struct {
	// stubborn attempts ignore their context once they have started.
	stubborn bool
	calls    chan fakeCall
	closed   chan struct{}
	once     sync.Once
}

type fakeCall struct {
	ctx   context.Context
	reply chan error
}

func newFakeChecker() *fakeChecker {
	return &fakeChecker{calls: make(chan fakeCall), closed: make(chan struct{})}
}

func (f *fakeChecker) check(ctx context.Context, _ time.Duration) error {
	call := fakeCall{ctx: ctx, reply: make(chan error)}
	select {
	case f.calls <- call:
	case <-ctx.Done():
		return ctx.Err()
	}
	if f.stubborn {
		return <-call.reply
	}
	select {
	case err := <-call.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeChecker) close() { f.once.Do(func() { close(f.closed) }) }

// call waits for the checker's next attempt.
func (f *fakeChecker) call(t *testing.T) fakeCall {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(wait):
		t.Fatalf("no attempt after %v", wait)
	}
	return fakeCall{}
}

// answer waits for the next attempt and makes it return err.
func (f *fakeChecker) answer(t *testing.T, err error) {
	t.Helper()
	c := f.call(t)
	select {
	case c.reply <- err:
	case <-time.After(wait):
		t.Fatal("the attempt did not take its answer")
	}
}

func (f *fakeChecker) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

var errFake = errors.New("fake failure")

// fakeSpec is a valid spec, with its defaults, for add with a fake checker.
func fakeSpec(interval time.Duration) Spec {
	return Spec{TCP: &TCP{Address: "127.0.0.1:1"}, Interval: interval}.WithDefaults()
}
