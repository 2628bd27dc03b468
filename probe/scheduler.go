package probe

import (
	"context"
	"time"
)

// The defaults of Options' zero fields.
const (
	DefaultMaxConcurrent = 256
	DefaultMaxExec       = 16
	DefaultCoalesce      = 100 * time.Millisecond
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
	// every attempt's result is sent (but see Results on a slow owner).
	ChangesOnly bool
	// Coalesce is the step of the grid that attempts start on: each
	// starts at the last step (counted from the scheduler's start) at or
	// before its due time, so attempts due close together run as one
	// batch, and the process wakes once per batch rather than once per
	// attempt. Wake-ups are most of the cost of probes spread out in time:
	// 1,000 HTTP probes a second spread evenly cost about a sixth of the
	// CPU in batches of 100 that they cost one by one (bench/probes). An
	// attempt starts less than one step early; the step is at most a tenth
	// of the probe's interval; a probe's period stays its interval on
	// average. 0 is DefaultCoalesce; negative is no grid.
	Coalesce time.Duration
}

// Scheduler runs probes: one goroutine owns a heap of them by due time,
// hands each due attempt to a pool of worker goroutines within the bounds
// of Options, and sends the results on Results. It is safe for concurrent
// use.
//
// The pool grows on demand up to its bound and keeps its workers until the
// scheduler stops: a worker's stack has grown to what an HTTP exchange
// needs, where a goroutine per attempt paid for growing it every time
// (15 % of the probing process's CPU in a profile). Its size is the
// largest number of attempts that were ever in flight at once: about a
// batch (see Options.Coalesce), at most MaxConcurrent.
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
	if opts.Coalesce == 0 {
		opts.Coalesce = DefaultCoalesce
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
	go s.loop(ctx, newState(s))
	return s
}

// Results returns the channel on which the results of attempts are sent,
// in the order the attempts finished (with ChangesOnly, only those that
// change a probe's status). It is unbuffered: the owner receives, and while
// it does not, probes go on being run and their results wait in the
// scheduler, at most one per probe: a probe's result not yet received is
// replaced by its next one, whose Changed then compares with the last
// received. It is closed when the scheduler has stopped.
func (s *Scheduler) Results() <-chan Result { return s.results }

// Add registers a probe and returns its handle. Its first attempt falls due
// after spec.InitialDelay, then one every spec.Interval (each may start a
// little sooner: Options.Coalesce). Add returns the spec's validation error
// (a *FieldError), or ErrClosed once the scheduler has stopped.
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
