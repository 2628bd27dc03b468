package probe

import (
	"context"
	"sync"
	"time"
)

// The lanes of attempts: network (http, tcp) and exec, bounded apart.
const (
	laneNet = iota
	laneExec
)

// lane is a line of due attempts and the workers that run them.
type lane struct {
	waiting fifo[*entry]
	running int // attempts handed to workers and not yet completed
	workers int
	max     int
	jobs    chan job // capacity max: a hand-off never blocks
}

// job is one attempt for a worker.
type job struct {
	e     *entry
	start time.Duration
}

// completion is an attempt's report to the loop.
type completion struct {
	e        *entry
	err      error
	start    time.Duration
	duration time.Duration
}

// state belongs to the loop goroutine, but for the done queue.
type state struct {
	s       *Scheduler
	entries map[Handle]*entry
	// draining holds the entries removed while an attempt of theirs ran,
	// whose checkers close when it ends.
	draining map[*entry]struct{}
	heap     dueHeap
	lanes    [2]lane
	// out lines up the entries with a result to send (entry.pending),
	// each once.
	out     fifo[*entry]
	wg      sync.WaitGroup // the workers
	timer   timer
	armed   bool
	armedAt time.Duration // the due time the timer is set for
	epoch   time.Time     // the origin of due times and of their grid
	last    Handle

	// done holds the completions of attempts: workers append to it and
	// poke finished; the loop takes them all at once.
	doneMu   sync.Mutex
	done     []completion
	finished chan struct{}
	spare    []completion // the loop's: done's other buffer
}

func newState(s *Scheduler) *state {
	st := &state{
		s:        s,
		entries:  make(map[Handle]*entry),
		draining: make(map[*entry]struct{}),
		finished: make(chan struct{}, 1),
		timer:    s.clk.NewTimer(),
		epoch:    s.clk.Now(),
	}
	for i, max := range []int{s.opts.MaxConcurrent, s.opts.MaxExec} {
		st.lanes[i].max = max
		st.lanes[i].jobs = make(chan job, max)
	}
	return st
}

// now is the time since the epoch, on the monotonic clock when the clock
// has one.
func (st *state) now() time.Duration { return st.s.clk.Now().Sub(st.epoch) }

func (s *Scheduler) loop(ctx context.Context, st *state) {
	defer close(s.stopped)
	defer close(s.results)
	defer st.timer.Stop()
	for {
		st.startDue(st.now())
		st.arm()
		for st.out.len() > 0 && !st.out.front().pending {
			st.out.pop().inOut = false
		}
		var out chan<- Result
		var next Result
		if st.out.len() > 0 {
			out, next = s.results, st.out.front().result
		}
		select {
		case <-ctx.Done():
			st.shutdown()
			return
		case fn := <-s.reqs:
			fn(st)
		case <-st.finished:
			st.doneMu.Lock()
			batch := st.done
			st.done = st.spare[:0]
			st.doneMu.Unlock()
			for i, c := range batch {
				st.complete(c)
				batch[i] = completion{}
			}
			st.spare = batch
		case <-st.timer.C():
			st.armed = false
		case out <- next:
			e := st.out.pop()
			e.inOut, e.pending, e.result = false, false, Result{}
			e.sent = next.Status
		}
	}
}

func (st *state) add(spec Spec, chk checker) Handle {
	st.last++
	ctx, cancel := context.WithCancel(context.Background())
	e := &entry{handle: st.last, spec: spec, chk: chk, ctx: ctx, cancel: cancel}
	if spec.Exec != nil {
		e.lane = laneExec
	}
	e.ideal = st.now() + spec.InitialDelay
	e.due = st.align(e, e.ideal)
	st.entries[e.handle] = e
	st.heap.push(e)
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
	if e.inOut {
		st.out.filter(func(x *entry) bool { return x != e })
	}
	if e.running {
		st.draining[e] = struct{}{}
	} else {
		// In the heap or waiting in its lane, it is dropped when its turn
		// comes.
		e.chk.close()
	}
	if !e.running && !e.queued {
		st.heap.stale++
		st.heap.compact()
	}
	return true
}

// startDue moves the entries due by now to their lanes and hands what the
// lanes' bounds allow to workers.
func (st *state) startDue(now time.Duration) {
	for st.heap.len() > 0 && st.heap.top().due <= now {
		e := st.heap.pop()
		if e.removed {
			st.heap.stale--
			continue
		}
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
			if l.workers < l.running {
				l.workers++
				st.wg.Add(1)
				go st.worker(l.jobs)
			}
			l.jobs <- job{e: e, start: now}
		}
	}
}

// worker runs attempts until the lane's jobs channel closes. It touches
// only the immutable fields of entries, and the done queue.
func (st *state) worker(jobs <-chan job) {
	defer st.wg.Done()
	for j := range jobs {
		t0 := time.Now()
		err := j.e.chk.check(j.e.ctx, j.e.spec.Timeout)
		c := completion{e: j.e, err: err, start: j.start, duration: time.Since(t0)}
		st.doneMu.Lock()
		st.done = append(st.done, c)
		first := len(st.done) == 1
		st.doneMu.Unlock()
		if first {
			select {
			case st.finished <- struct{}{}:
			default:
			}
		}
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
	switch {
	case passed && e.consecutive >= e.spec.SuccessThreshold:
		e.status = StatusPassing
	case !passed && e.consecutive >= e.spec.FailureThreshold:
		e.status = StatusFailing
	}
	// Due every Interval from the first attempt; an attempt that ran past
	// its successor's time is followed at once, without making up more.
	e.ideal += e.spec.Interval
	if now := st.now(); e.ideal < now {
		e.ideal = now
	}
	e.due = st.align(e, e.ideal)
	st.heap.push(e)

	// A result not yet sent is replaced: at most one waits per probe.
	changed := e.status != e.sent
	if st.s.opts.ChangesOnly && !changed {
		e.pending, e.result = false, Result{}
		return
	}
	e.result = Result{
		Handle:      e.handle,
		Passed:      passed,
		Consecutive: e.consecutive,
		Status:      e.status,
		Changed:     changed,
		Err:         c.err,
		Time:        st.epoch.Add(c.start),
		Duration:    c.duration,
	}
	e.pending = true
	if !e.inOut {
		e.inOut = true
		st.out.push(e)
	}
}

// slack is e's grid step, less than which it may start early: Coalesce,
// at most a tenth of its interval.
func (st *state) slack(e *entry) time.Duration {
	return max(0, min(st.s.opts.Coalesce, e.spec.Interval/10))
}

// align returns t moved back onto e's grid, the multiples of its slack:
// probes whose due times fall between two grid points run in one batch,
// at the first, and each attempt is less than one step early.
func (st *state) align(e *entry, t time.Duration) time.Duration {
	if g := st.slack(e); g > 0 {
		return t - t%g
	}
	return t
}

// arm sets the timer for the earliest due entry.
func (st *state) arm() {
	if st.heap.len() == 0 {
		if st.armed {
			st.timer.Stop()
			st.armed = false
		}
		return
	}
	due := st.heap.top().due
	if st.armed && due == st.armedAt {
		return
	}
	st.armed, st.armedAt = true, due
	st.timer.Reset(due - st.now())
}

// shutdown interrupts the attempts in flight, waits for the workers, and
// closes every checker.
func (st *state) shutdown() {
	for _, e := range st.entries {
		e.cancel()
	}
	for i := range st.lanes {
		close(st.lanes[i].jobs)
	}
	st.wg.Wait()
	for _, e := range st.entries {
		e.chk.close()
	}
	for e := range st.draining {
		e.chk.close()
	}
}
