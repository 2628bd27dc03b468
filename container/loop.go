package container

import (
	"container/heap"
	"time"

	"github.com/vigild/vigil/notify"
	"github.com/vigild/vigil/probe"
)

// loopState is everything the loop owns. Only the loop goroutine reads or
// writes it while the loop runs (before Start and after the loop has ended,
// nothing writes it).
type loopState struct {
	services []*service
	retiring []*proc            // processes being stopped that no instance holds
	live     int                // processes started and not yet reaped
	inFlight map[*spawnJob]bool // spawn jobs handed to the spawner pool
	pending  []*spawnJob        // spawn jobs not yet handed over
	stopping bool
	killing  bool // stopping without grace
	stopped  bool // every process stopped and reaped while stopping
	alarms   alarmHeap
	timer    *time.Timer
	timerAt  time.Time
	waiters  []*waiter
	batches  map[*batch]bool        // replacements in progress
	seq      uint64                 // numbers processes
	rearms   int                    // alarms that only re-armed a clock, while firing
	sched    *probe.Scheduler       // nil until a probe is needed
	probed   map[probe.Handle]*proc // the processes whose probe runs
	// startFails counts the instances that failed before they were ever
	// ready (see failStart): a wait for services to start looks at every
	// instance again only when it has changed.
	startFails uint64
}

// event is something that happened outside the loop.
type event interface{ handle(c *Container) }

// evSpawned: a spawn job finished, started or failed.
type evSpawned struct{ job *spawnJob }

func (e evSpawned) handle(c *Container) { c.onSpawned(e.job) }

// evExited: a process has exited; it is a zombie, not yet reaped.
type evExited struct{ p *proc }

func (e evExited) handle(c *Container) { c.onExit(e.p) }

// evMessage: a process wrote a readiness message.
type evMessage struct {
	p *proc
	m notify.Message
}

func (e evMessage) handle(c *Container) { c.onMessage(e.p, e.m) }

// changes reports whether the message may change what Children shows (a
// heartbeat of a healthy process does not).
func (e evMessage) changes() bool {
	return e.m.Ready != nil || (e.m.Status != "" && e.m.Status != e.p.status) || (e.m.Healthy && e.p.unhealthy)
}

// send hands an event to the loop. The loop ends only once every process
// has been reaped and every spawn has answered, so exits and spawn results
// always reach it; a message a reader still holds after that is dropped.
func (c *Container) send(e event) {
	select {
	case c.events <- e:
	case <-c.loopDone:
	}
}

// waiter is a condition evaluated after every change; when it says done,
// its error is sent on reply and it is removed.
type waiter struct {
	cond  func() (bool, error)
	reply chan error
}

func (c *Container) addWaiter(w *waiter) {
	if done, err := w.cond(); done {
		w.reply <- err
		return
	}
	c.st.waiters = append(c.st.waiters, w)
}

func (c *Container) removeWaiter(w *waiter) {
	for i, x := range c.st.waiters {
		if x == w {
			c.st.waiters = append(c.st.waiters[:i], c.st.waiters[i+1:]...)
			return
		}
	}
}

// loop is the owner of the container's state: it runs until the container
// is stopping and nothing is left.
func (c *Container) loop() {
	defer close(c.loopDone)
	st := &c.st
	for !st.stopped {
		var spawnq chan<- *spawnJob
		var next *spawnJob
		if len(st.pending) > 0 {
			spawnq, next = c.pool.jobs, st.pending[0]
			c.prepare(next) // once
		}
		select {
		case cmd := <-c.cmds:
			cmd.fn()
			if cmd.changes {
				c.version.Add(1)
			}
		case ev := <-c.events:
			if m, ok := ev.(evMessage); !ok || m.changes() {
				c.version.Add(1)
			}
			ev.handle(c)
		case spawnq <- next:
			st.pending[0] = nil
			st.pending = st.pending[1:]
			c.handedOver(next)
		case <-st.timer.C:
			st.timerAt = time.Time{}
			st.rearms = 0
			if c.fireAlarms(c.now()) > st.rearms {
				c.version.Add(1)
			}
		}
		c.settle()
	}
	st.timer.Stop()
	for _, w := range st.waiters {
		w.reply <- ErrStopped
	}
	st.waiters = nil
}

// settle runs after every event and command: waiters whose condition now
// holds are answered, the stop advances, and the timer is set for the
// earliest alarm.
func (c *Container) settle() {
	st := &c.st
	if len(st.waiters) > 0 {
		kept := st.waiters[:0]
		for _, w := range st.waiters {
			if done, err := w.cond(); done {
				w.reply <- err
			} else {
				kept = append(kept, w)
			}
		}
		clear(st.waiters[len(kept):])
		st.waiters = kept
	}
	if st.stopping {
		c.advanceStop()
	}
	if len(st.alarms) == 0 || c.opts.manualAlarms {
		if !st.timerAt.IsZero() {
			st.timer.Stop()
			st.timerAt = time.Time{}
		}
		return
	}
	if at := st.alarms[0].at; !at.Equal(st.timerAt) {
		st.timer.Reset(max(at.Sub(c.now()), 0))
		st.timerAt = at
	}
}

// alarm is a deadline of the loop: fire runs on the loop once it has
// passed. Its index is its place in the heap, -1 when not scheduled.
type alarm struct {
	at    time.Time
	fire  func(now time.Time)
	index int
}

type alarmHeap []*alarm

func (h alarmHeap) Len() int           { return len(h) }
func (h alarmHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h alarmHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *alarmHeap) Push(x any) {
	a := x.(*alarm)
	a.index = len(*h)
	*h = append(*h, a)
}
func (h *alarmHeap) Pop() any {
	old := *h
	a := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	a.index = -1
	return a
}

// schedule sets (or moves) a to fire at at, creating it if nil, and
// returns it.
func (c *Container) schedule(a *alarm, at time.Time, fire func(time.Time)) *alarm {
	if a == nil {
		a = &alarm{index: -1}
	}
	a.at, a.fire = at, fire
	if a.index >= 0 {
		heap.Fix(&c.st.alarms, a.index)
	} else {
		heap.Push(&c.st.alarms, a)
	}
	return a
}

// cancel unschedules a (nil or not scheduled: nothing).
func (c *Container) cancel(a *alarm) {
	if a != nil && a.index >= 0 {
		heap.Remove(&c.st.alarms, a.index)
	}
}

// fireAlarms runs every alarm due at now, earliest first, and says how
// many.
func (c *Container) fireAlarms(now time.Time) int {
	n := 0
	for len(c.st.alarms) > 0 && !c.st.alarms[0].at.After(now) {
		a := heap.Pop(&c.st.alarms).(*alarm)
		a.fire(now)
		n++
	}
	return n
}
