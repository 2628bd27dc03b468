package probe

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// The defaults of Options' zero fields.
const (
	DefaultMaxConcurrent = 256
	DefaultMaxExec       = 16
)

// Options configure a Scheduler. The zero value is ready to use.
type Options struct {
	// MaxConcurrent bounds the http and tcp attempts in flight at once
	// (0: DefaultMaxConcurrent). Each holds a goroutine and a socket while
	// it waits, and no thread. Attempts due beyond it wait in line, in the
	// order they fell due; against servers that all hang, attempts complete
	// at MaxConcurrent per Timeout, so raise it for more probes than that
	// per interval.
	MaxConcurrent int
	// MaxExec bounds the exec commands running at once (0: DefaultMaxExec).
	// A command is a process, and with os/exec a thread blocked in wait.
	MaxExec int
	// Runner runs exec probes' commands; nil is ExecRunner.
	Runner Runner
	// ChangesOnly sends only the results whose Status changed; otherwise
	// every attempt's result is sent.
	ChangesOnly bool
}

// Scheduler runs probes: one goroutine owns a heap of them by due time and
// starts each due attempt on a goroutine of its own, within the bounds of
// Options, and sends the results on Results. It is safe for concurrent use.
//
// Attempts run on short-lived goroutines capped by a count the owning
// goroutine keeps, not on a pool: an idle scheduler holds one goroutine
// whatever the number of probes, a burst of due probes needs no hand-off to
// a worker, and the goroutines' stacks are the runtime's to recycle.
type Scheduler struct {
	opts    Options
	clk     clock
	reqs    chan func(*state)
	results chan Result
	stopped chan struct{}
	cancel  context.CancelFunc
}

// New starts a Scheduler. It stops when ctx is cancelled or Close is
// called; then attempts in flight are interrupted and waited for, and
// Results is closed.
func New(ctx context.Context, opts Options) *Scheduler {
	return newScheduler(ctx, opts, realClock{})
}

func newScheduler(ctx context.Context, opts Options, clk clock) *Scheduler {
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.MaxExec <= 0 {
		opts.MaxExec = DefaultMaxExec
	}
	if opts.Runner == nil {
		opts.Runner = ExecRunner
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Scheduler{
		opts:    opts,
		clk:     clk,
		reqs:    make(chan func(*state)),
		results: make(chan Result),
		stopped: make(chan struct{}),
		cancel:  cancel,
	}
	st := &state{
		s:        s,
		entries:  make(map[Handle]*entry),
		draining: make(map[*entry]struct{}),
		done:     make(chan completion),
		timer:    clk.NewTimer(),
	}
	st.lanes[laneNet].max = opts.MaxConcurrent
	st.lanes[laneExec].max = opts.MaxExec
	go s.loop(ctx, st)
	return s
}

// Results returns the channel on which every attempt's result (or, with
// ChangesOnly, every change of status) is sent, in the order the attempts
// finished. It is unbuffered: the owner receives, and while it does not,
// results queue up inside the scheduler and probes go on being run. It is
// closed when the scheduler has stopped.
func (s *Scheduler) Results() <-chan Result { return s.results }

// Add registers a probe and returns its handle. Its first attempt falls due
// after spec.InitialDelay, then one every spec.Interval. Add returns the
// spec's validation error (a *FieldError), or ErrClosed once the scheduler
// has stopped.
func (s *Scheduler) Add(spec Spec) (Handle, error) {
	if err := spec.Validate(); err != nil {
		return 0, err
	}
	spec = spec.WithDefaults()
	chk, err := newChecker(spec, s.opts.Runner)
	if err != nil {
		return 0, err
	}
	return s.add(spec, chk)
}

func (s *Scheduler) add(spec Spec, chk checker) (Handle, error) {
	var h Handle
	ok := s.do(func(st *state) { h = st.add(spec, chk) })
	if !ok {
		chk.close()
		return 0, ErrClosed
	}
	return h, nil
}

// Remove unregisters the probe h and interrupts its attempt in flight. Once
// Remove has returned, no result of h is received from Results, not even
// one of an attempt that finished before. It reports whether h was
// registered (false once the scheduler has stopped).
func (s *Scheduler) Remove(h Handle) bool {
	var found bool
	s.do(func(st *state) { found = st.remove(h) })
	return found
}

// Close stops the scheduler and waits until every goroutine it started has
// returned and every connection it opened is closed. It is idempotent.
func (s *Scheduler) Close() {
	s.cancel()
	<-s.stopped
}

// do runs fn on the loop goroutine and waits for it; false if the
// scheduler has stopped.
func (s *Scheduler) do(fn func(*state)) bool {
	done := make(chan struct{})
	select {
	case s.reqs <- func(st *state) { fn(st); close(done) }:
		<-done
		return true
	case <-s.stopped:
		return false
	}
}

// The lanes of attempts: network (http, tcp) and exec, bounded apart.
const (
	laneNet = iota
	laneExec
)

// state belongs to the loop goroutine.
type state struct {
	s       *Scheduler
	entries map[Handle]*entry
	// draining holds the entries removed while an attempt of theirs ran,
	// whose checkers close when it ends.
	draining map[*entry]struct{}
	heap     dueHeap
	lanes    [2]struct {
		waiting fifo[*entry]
		running int
		max     int
	}
	out     fifo[Result]
	done    chan completion
	wg      sync.WaitGroup
	timer   timer
	armedAt time.Time // due time the timer is set for; zero when unset
	last    Handle
}

// completion is an attempt's report to the loop.
type completion struct {
	e        *entry
	err      error
	start    time.Time
	duration time.Duration
}

func (s *Scheduler) loop(ctx context.Context, st *state) {
	defer close(s.stopped)
	defer close(s.results)
	defer st.timer.Stop()
	for {
		st.startDue(ctx, s.clk.Now())
		st.arm()
		var out chan<- Result
		var next Result
		if st.out.len() > 0 {
			out, next = s.results, st.out.front()
		}
		select {
		case <-ctx.Done():
			st.shutdown()
			return
		case fn := <-s.reqs:
			fn(st)
		case c := <-st.done:
			st.complete(c)
		case <-st.timer.C():
			st.armedAt = time.Time{}
		case out <- next:
			st.out.pop()
		}
	}
}

func (st *state) add(spec Spec, chk checker) Handle {
	st.last++
	ctx, cancel := context.WithCancel(context.Background())
	e := &entry{
		handle: st.last,
		spec:   spec,
		chk:    chk,
		ctx:    ctx,
		cancel: cancel,
		due:    st.s.clk.Now().Add(spec.InitialDelay),
		index:  -1,
	}
	if spec.Exec != nil {
		e.lane = laneExec
	}
	st.entries[e.handle] = e
	heap.Push(&st.heap, e)
	return e.handle
}

func (st *state) remove(h Handle) bool {
	e, ok := st.entries[h]
	if !ok {
		return false
	}
	delete(st.entries, h)
	e.removed = true
	e.cancel()
	if e.index >= 0 {
		heap.Remove(&st.heap, e.index)
	}
	st.out.filter(func(r Result) bool { return r.Handle != h })
	if e.running {
		st.draining[e] = struct{}{}
	} else {
		// A queued entry is skipped when its turn comes.
		e.chk.close()
	}
	return true
}

// startDue moves the entries due by now to their lanes and starts what the
// lanes' bounds allow.
func (st *state) startDue(ctx context.Context, now time.Time) {
	for len(st.heap) > 0 && !st.heap[0].due.After(now) {
		e := heap.Pop(&st.heap).(*entry)
		e.queued = true
		st.lanes[e.lane].waiting.push(e)
	}
	for i := range st.lanes {
		l := &st.lanes[i]
		for l.running < l.max && l.waiting.len() > 0 {
			e := l.waiting.pop()
			e.queued = false
			if e.removed {
				continue
			}
			l.running++
			e.running = true
			st.wg.Add(1)
			go st.attempt(ctx, e, now)
		}
	}
}

// attempt runs on its own goroutine: it touches only e's immutable fields.
func (st *state) attempt(stop context.Context, e *entry, start time.Time) {
	defer st.wg.Done()
	t0 := time.Now()
	err := e.chk.check(e.ctx, e.spec.Timeout)
	c := completion{e: e, err: err, start: start, duration: time.Since(t0)}
	select {
	case st.done <- c:
	case <-stop.Done():
		// The loop is shutting down and no longer needs the result; it
		// counts this attempt done through wg.
	}
}

func (st *state) complete(c completion) {
	e := c.e
	st.lanes[e.lane].running--
	e.running = false
	if e.removed {
		delete(st.draining, e)
		e.chk.close()
		return
	}
	passed := c.err == nil
	if e.consecutive > 0 && passed == e.lastPassed {
		e.consecutive++
	} else {
		e.lastPassed, e.consecutive = passed, 1
	}
	old := e.status
	switch {
	case passed && e.consecutive >= e.spec.SuccessThreshold:
		e.status = StatusPassing
	case !passed && e.consecutive >= e.spec.FailureThreshold:
		e.status = StatusFailing
	}
	// Due every Interval from the first attempt; an attempt that ran past
	// its successor's time is followed at once, without making up more.
	e.due = e.due.Add(e.spec.Interval)
	if now := st.s.clk.Now(); e.due.Before(now) {
		e.due = now
	}
	heap.Push(&st.heap, e)
	changed := e.status != old
	if st.s.opts.ChangesOnly && !changed {
		return
	}
	st.out.push(Result{
		Handle:      e.handle,
		Passed:      passed,
		Consecutive: e.consecutive,
		Status:      e.status,
		Changed:     changed,
		Err:         c.err,
		Time:        c.start,
		Duration:    c.duration,
	})
}

// arm sets the timer for the earliest due entry.
func (st *state) arm() {
	if len(st.heap) == 0 {
		if !st.armedAt.IsZero() {
			st.timer.Stop()
			st.armedAt = time.Time{}
		}
		return
	}
	due := st.heap[0].due
	if due.Equal(st.armedAt) {
		return
	}
	st.armedAt = due
	st.timer.Reset(due.Sub(st.s.clk.Now()))
}

// shutdown interrupts the attempts in flight, waits for them, and closes
// every checker.
func (st *state) shutdown() {
	for _, e := range st.entries {
		e.cancel()
	}
	st.wg.Wait()
	for _, e := range st.entries {
		e.chk.close()
	}
	for e := range st.draining {
		e.chk.close()
	}
}
