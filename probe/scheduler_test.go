package probe

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestThresholdsCountExactly(t *testing.T) {
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{}, clk)
	defer s.Close()
	f := newFakeChecker()
	spec := fakeSpec(time.Second)
	spec.FailureThreshold, spec.SuccessThreshold = 3, 2
	h, err := s.add(spec, f)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		err         error
		consecutive int
		status      Status
		changed     bool
	}{
		{nil, 1, StatusUnknown, false},
		{nil, 2, StatusPassing, true},
		{nil, 3, StatusPassing, false},
		{errFake, 1, StatusPassing, false},
		{errFake, 2, StatusPassing, false},
		{errFake, 3, StatusFailing, true},
		{errFake, 4, StatusFailing, false},
		{nil, 1, StatusFailing, false},
		{errFake, 1, StatusFailing, false},
		{nil, 1, StatusFailing, false},
		{nil, 2, StatusPassing, true},
	}
	start := clk.Now()
	for i, step := range steps {
		if i > 0 {
			clk.Advance(time.Second)
		}
		f.answer(t, step.err)
		r := next(t, s)
		if r.Handle != h || r.Passed != (step.err == nil) || r.Consecutive != step.consecutive ||
			r.Status != step.status || r.Changed != step.changed || !errors.Is(r.Err, step.err) {
			t.Fatalf("step %d: got %+v, want passed=%v consecutive=%d status=%v changed=%v",
				i, r, step.err == nil, step.consecutive, step.status, step.changed)
		}
		if want := start.Add(time.Duration(i) * time.Second); !r.Time.Equal(want) {
			t.Fatalf("step %d: attempt at %v, want %v", i, r.Time, want)
		}
	}
}

func TestIntervalAndInitialDelay(t *testing.T) {
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{Coalesce: -1}, clk)
	defer s.Close()
	f := newFakeChecker()
	spec := fakeSpec(10 * time.Second)
	spec.InitialDelay = 5 * time.Second
	if _, err := s.add(spec, f); err != nil {
		t.Fatal(err)
	}
	start := clk.Now()
	noAttempt := func(when string) {
		t.Helper()
		if c := s.counts(); c.running != 0 {
			t.Fatalf("%s: %d attempts running, want none", when, c.running)
		}
	}
	noAttempt("at once")
	clk.Advance(5*time.Second - time.Nanosecond)
	noAttempt("before the initial delay")
	clk.Advance(time.Nanosecond)
	f.answer(t, nil)
	if r := next(t, s); !r.Time.Equal(start.Add(5 * time.Second)) {
		t.Fatalf("first attempt at %v, want start+5s", r.Time.Sub(start))
	}
	clk.Advance(10*time.Second - time.Nanosecond)
	noAttempt("before the interval")
	clk.Advance(time.Nanosecond)
	// An attempt that runs past its successor's time: the next one starts
	// as soon as it ends, and the one after is due an interval after.
	c := f.call(t)
	clk.Advance(25 * time.Second) // at start+40s
	c.reply <- nil
	if r := next(t, s); !r.Time.Equal(start.Add(15 * time.Second)) {
		t.Fatalf("second attempt at %v, want start+15s", r.Time.Sub(start))
	}
	f.answer(t, nil)
	if r := next(t, s); !r.Time.Equal(start.Add(40 * time.Second)) {
		t.Fatalf("third attempt at %v, want start+40s (at once)", r.Time.Sub(start))
	}
	clk.Advance(10*time.Second - time.Nanosecond)
	noAttempt("before the interval after the late attempt")
	clk.Advance(time.Nanosecond)
	f.answer(t, nil)
	if r := next(t, s); !r.Time.Equal(start.Add(50 * time.Second)) {
		t.Fatalf("fourth attempt at %v, want start+50s", r.Time.Sub(start))
	}
}

func TestConcurrencyBound(t *testing.T) {
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{MaxConcurrent: 2, MaxExec: 1}, clk)
	defer s.Close()
	var net []*fakeChecker
	for range 5 {
		f := newFakeChecker()
		net = append(net, f)
		if _, err := s.add(fakeSpec(time.Hour), f); err != nil {
			t.Fatal(err)
		}
	}
	exec := newFakeChecker()
	execSpec := Spec{Exec: &Exec{Argv: []string{"true"}}, Interval: time.Hour}.WithDefaults()
	if _, err := s.add(execSpec, exec); err != nil {
		t.Fatal(err)
	}
	// The exec lane is bounded apart: its command runs beside two network
	// attempts.
	c0, c1, ce := net[0].call(t), net[1].call(t), exec.call(t)
	if c := s.counts(); c.running != 3 || c.waiting != 3 {
		t.Fatalf("running %d waiting %d, want 3 and 3", c.running, c.waiting)
	}
	c0.reply <- nil
	next(t, s)
	// In the order they fell due.
	c2 := net[2].call(t)
	if c := s.counts(); c.running != 3 || c.waiting != 2 {
		t.Fatalf("running %d waiting %d, want 3 and 2", c.running, c.waiting)
	}
	for _, c := range []fakeCall{c1, c2, ce} {
		c.reply <- nil
		next(t, s)
	}
	for _, f := range net[3:] {
		f.answer(t, nil)
		next(t, s)
	}
	if c := s.counts(); c.running != 0 || c.waiting != 0 || c.inHeap != 6 || c.workers != 3 {
		t.Fatalf("got %+v, want all 6 in the heap and 3 workers (2 + 1 exec)", c)
	}
}

func TestRemoveInFlightDeliversNothing(t *testing.T) {
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{}, clk)
	defer s.Close()
	f := newFakeChecker()
	h, err := s.add(fakeSpec(time.Second), f)
	if err != nil {
		t.Fatal(err)
	}
	c := f.call(t)
	if !s.Remove(h) {
		t.Fatal("Remove: not registered")
	}
	// Remove cancelled the attempt's context.
	select {
	case <-c.ctx.Done():
	case <-time.After(wait):
		t.Fatal("the attempt in flight was not interrupted")
	}
	eventually(t, "the interrupted attempt ends", func() bool { return s.counts().running == 0 })
	if got := s.counts(); got != (counts{workers: 1}) {
		t.Fatalf("after the attempt ended: %+v, want nothing left", got)
	}
	if !f.isClosed() {
		t.Fatal("the checker was not closed")
	}
	none(t, s)
	if s.Remove(h) {
		t.Fatal("a second Remove found it")
	}
}

func TestRemoveDropsQueuedResult(t *testing.T) {
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{}, clk)
	defer s.Close()
	f, g := newFakeChecker(), newFakeChecker()
	h, err := s.add(fakeSpec(time.Second), f)
	if err != nil {
		t.Fatal(err)
	}
	hg, err := s.add(fakeSpec(time.Second), g)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody receives: both results wait in the scheduler.
	f.answer(t, errFake)
	g.answer(t, nil)
	eventually(t, "two results queued", func() bool { return s.counts().pending == 2 })
	s.Remove(h)
	if c := s.counts(); c.pending != 1 || c.registered != 1 {
		t.Fatalf("after Remove: %+v, want g's result alone", c)
	}
	if r := next(t, s); r.Handle != hg {
		t.Fatalf("got a result of %d, want only %d's", r.Handle, hg)
	}
	if !f.isClosed() || g.isClosed() {
		t.Fatal("want the removed checker closed and the other open")
	}
}

func TestRemoveWaitingInLine(t *testing.T) {
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{MaxConcurrent: 1}, clk)
	defer s.Close()
	f, g := newFakeChecker(), newFakeChecker()
	if _, err := s.add(fakeSpec(time.Second), f); err != nil {
		t.Fatal(err)
	}
	hg, err := s.add(fakeSpec(time.Second), g)
	if err != nil {
		t.Fatal(err)
	}
	c := f.call(t)
	if n := s.counts().waiting; n != 1 {
		t.Fatalf("%d waiting, want g", n)
	}
	s.Remove(hg)
	if !g.isClosed() {
		t.Fatal("g's checker was not closed")
	}
	c.reply <- nil
	next(t, s)
	// g's turn came and went: it never ran.
	if c := s.counts(); c.running != 0 || c.waiting != 0 || c.registered != 1 {
		t.Fatalf("got %+v", c)
	}
	select {
	case <-g.calls:
		t.Fatal("a removed probe ran")
	default:
	}
}

func TestChangesOnly(t *testing.T) {
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{ChangesOnly: true}, clk)
	defer s.Close()
	f := newFakeChecker()
	spec := fakeSpec(time.Second)
	spec.FailureThreshold = 2
	if _, err := s.add(spec, f); err != nil {
		t.Fatal(err)
	}
	f.answer(t, nil) // unknown -> passing
	if r := next(t, s); r.Status != StatusPassing || !r.Changed {
		t.Fatalf("got %+v", r)
	}
	for _, err := range []error{nil, errFake} {
		clk.Advance(time.Second)
		f.answer(t, err)
	}
	clk.Advance(time.Second)
	f.answer(t, errFake) // passing -> failing
	r := next(t, s)
	if r.Status != StatusFailing || !r.Changed || r.Consecutive != 2 {
		t.Fatalf("got %+v, want the change to failing after 2 failures", r)
	}
	if c := s.counts(); c.pending != 0 {
		t.Fatalf("%d results pending, want none", c.pending)
	}
}

func TestCloseWaitsAndCloses(t *testing.T) {
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{}, clk)
	f, idle, removed := newFakeChecker(), newFakeChecker(), newFakeChecker()
	f.stubborn = true
	if _, err := s.add(fakeSpec(time.Second), f); err != nil {
		t.Fatal(err)
	}
	hr, err := s.add(fakeSpec(time.Second), removed)
	if err != nil {
		t.Fatal(err)
	}
	spec := fakeSpec(time.Second)
	spec.InitialDelay = time.Hour
	if _, err := s.add(spec, idle); err != nil {
		t.Fatal(err)
	}
	c := f.call(t)
	removed.call(t) // in flight, never answered
	s.Remove(hr)
	// An attempt that ignores its context holds Close up until it ends.
	ended := make(chan struct{})
	go func() {
		s.Close()
		close(ended)
	}()
	select {
	case <-c.ctx.Done():
	case <-time.After(wait):
		t.Fatal("Close did not cancel the attempt in flight")
	}
	select {
	case <-ended:
		t.Fatal("Close returned before the attempt in flight ended")
	case <-time.After(50 * time.Millisecond):
	}
	c.reply <- errFake
	select {
	case <-ended:
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	for i, f := range []*fakeChecker{f, idle, removed} {
		if !f.isClosed() {
			t.Fatalf("checker %d not closed", i)
		}
	}
	if _, ok := <-s.Results(); ok {
		t.Fatal("Results not closed")
	}
	if _, err := s.add(fakeSpec(time.Second), newFakeChecker()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v, want ErrClosed", err)
	}
	if s.Remove(1) {
		t.Fatal("Remove after Close found something")
	}
	s.Close()
}

func TestContextStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := New(ctx, Options{})
	cancel()
	select {
	case _, ok := <-s.Results():
		if ok {
			t.Fatal("a result")
		}
	case <-time.After(wait):
		t.Fatal("Results not closed after the context ended")
	}
	if _, err := s.Add(Spec{TCP: &TCP{Address: "127.0.0.1:1"}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add: %v, want ErrClosed", err)
	}
	s.Close()
}

func TestAddRefusesInvalidSpec(t *testing.T) {
	s := New(context.Background(), Options{})
	defer s.Close()
	_, err := s.Add(Spec{HTTP: &HTTP{URL: "ftp://x"}})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "http.url" {
		t.Fatalf("got %v, want a FieldError on http.url", err)
	}
}

func TestCoalesce(t *testing.T) {
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{Coalesce: 100 * time.Millisecond}, clk)
	defer s.Close()
	start := clk.Now()
	add := func(interval time.Duration) *fakeChecker {
		t.Helper()
		f := newFakeChecker()
		spec := fakeSpec(interval)
		if _, err := s.add(spec, f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	at := func(r Result) time.Duration { return r.Time.Sub(start) }
	a, c := add(10*time.Second), add(10*time.Second+50*time.Millisecond)
	a.answer(t, nil)
	c.answer(t, nil)
	next(t, s)
	next(t, s)
	clk.Advance(30 * time.Millisecond)
	b := add(10 * time.Second) // off the grid: runs at once, then on it
	b.answer(t, nil)
	if r := next(t, s); at(r) != 30*time.Millisecond {
		t.Fatalf("b's first attempt at %v, want 30ms", at(r))
	}
	clk.Advance(10*time.Second - 30*time.Millisecond - time.Nanosecond)
	if n := s.counts().running; n != 0 {
		t.Fatalf("%d attempts before 10s", n)
	}
	// The loop woke up for counts: still nothing to start.
	if n := s.counts().running; n != 0 {
		t.Fatalf("%d attempts before 10s (after a wake-up)", n)
	}
	// At 10s: a and b are due, and c (due at 10.05s) is on the same step.
	clk.Advance(time.Nanosecond)
	for _, f := range []*fakeChecker{a, b, c} {
		f.answer(t, nil)
		if r := next(t, s); at(r) != 10*time.Second {
			t.Fatalf("attempt at %v, want all three at 10s", at(r))
		}
	}
	// c's next is due at 20.1s, on the step of 20.1s; a's and b's at 20s.
	clk.Advance(10 * time.Second)
	a.answer(t, nil)
	b.answer(t, nil)
	next(t, s)
	next(t, s)
	if n := s.counts().running; n != 0 {
		t.Fatalf("c started at 20s, want 20.1s")
	}
	clk.Advance(100 * time.Millisecond)
	c.answer(t, nil)
	if r := next(t, s); at(r) != 20100*time.Millisecond {
		t.Fatalf("c's third attempt at %v, want 20.1s", at(r))
	}
}

func TestSlackAndGrid(t *testing.T) {
	st := &state{s: &Scheduler{opts: Options{Coalesce: 100 * time.Millisecond}}}
	ms := time.Millisecond
	for _, tt := range []struct {
		coalesce, interval, t time.Duration
		slack, aligned        time.Duration
	}{
		{100 * ms, 10 * time.Second, 1234 * ms, 100 * ms, 1200 * ms},
		{100 * ms, 200 * ms, 1234 * ms, 20 * ms, 1220 * ms}, // a tenth of the interval
		{100 * ms, 5 * ms, 1234 * ms, 500 * time.Microsecond, 1234 * ms},
		{-1, 10 * time.Second, 1234 * ms, 0, 1234 * ms},
	} {
		st.s.opts.Coalesce = tt.coalesce
		e := &entry{spec: Spec{Interval: tt.interval}}
		if got := st.slack(e); got != tt.slack {
			t.Errorf("slack(coalesce %v, interval %v) = %v, want %v", tt.coalesce, tt.interval, got, tt.slack)
		}
		if got := st.align(e, tt.t); got != tt.aligned {
			t.Errorf("align(%v; coalesce %v, interval %v) = %v, want %v", tt.t, tt.coalesce, tt.interval, got, tt.aligned)
		}
	}
}

func TestSlowOwnerGetsLatestResult(t *testing.T) {
	for _, changesOnly := range []bool{false, true} {
		clk := newFakeClock()
		s := newScheduler(context.Background(), Options{ChangesOnly: changesOnly}, clk)
		f := newFakeChecker()
		spec := fakeSpec(time.Second)
		spec.FailureThreshold = 1
		h, err := s.add(spec, f)
		if err != nil {
			t.Fatal(err)
		}
		// attempt runs the next attempt with outcome err, and waits until
		// the loop has taken its completion, nobody receiving.
		attempt := func(i int, err error) {
			t.Helper()
			if i > 0 {
				clk.Advance(time.Second)
			}
			f.answer(t, err)
			eventually(t, "the attempt completes", func() bool { return s.counts().running == 0 })
			if n := s.counts().pending; n != 1 && !changesOnly {
				t.Fatalf("changesOnly=%v: %d results waiting, want 1", changesOnly, n)
			}
		}
		attempt(0, nil)     // passing
		attempt(1, errFake) // failing
		attempt(2, nil)     // passing again
		r := next(t, s)
		if r.Handle != h || !r.Passed || r.Status != StatusPassing || !r.Changed || r.Consecutive != 1 {
			t.Fatalf("changesOnly=%v: got %+v, want the third attempt's, changed from unknown", changesOnly, r)
		}
		attempt(3, errFake) // failing, waits
		attempt(4, nil)     // passing: as last received
		if changesOnly {
			if n := s.counts().pending; n != 0 {
				t.Fatalf("%d results waiting, want none: the status is back to the one received", n)
			}
		} else {
			r := next(t, s)
			if !r.Passed || r.Status != StatusPassing || r.Changed || r.Consecutive != 1 {
				t.Fatalf("got %+v, want the fifth attempt's, unchanged", r)
			}
		}
		s.Close()
	}
}

func TestRemovedEntriesLeaveTheHeap(t *testing.T) {
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{Coalesce: -1}, clk)
	defer s.Close()
	var handles []Handle
	var checkers []*fakeChecker
	for i := range 200 {
		f := newFakeChecker()
		spec := fakeSpec(time.Hour)
		spec.InitialDelay = time.Hour + time.Duration(i)*time.Second
		h, err := s.add(spec, f)
		if err != nil {
			t.Fatal(err)
		}
		handles, checkers = append(handles, h), append(checkers, f)
	}
	// Remove all but every fourth.
	for i, h := range handles {
		if i%4 != 0 {
			s.Remove(h)
		}
	}
	var items, stale int
	s.do(func(st *state) { items, stale = st.heap.len(), st.heap.stale })
	if items+stale > 200 || items-stale != 50 || items > 100 {
		t.Fatalf("heap of %d items, %d stale; want 50 live and the removed swept out as they passed half", items, stale)
	}
	// The survivors run in their order.
	clk.Advance(time.Hour + 200*time.Second)
	for i := 0; i < 200; i += 4 {
		checkers[i].answer(t, nil)
		if r := next(t, s); r.Handle != handles[i] {
			t.Fatalf("got %d, want %d", r.Handle, handles[i])
		}
	}
}
