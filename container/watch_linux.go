//go:build linux

package container

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/internal/epollset"
	"github.com/vigild/vigil/notify"
)

// watcher watches every child of a container from one goroutine: its
// exit (its pidfd becomes readable) and its readiness pipe, both in an
// epoll set of the watcher's own. A goroutine in waitExit and another
// reading the pipe, for each child, cost two goroutine stacks (8 KiB
// each at least), two registrations in Go's runtime poller and two
// goroutine starts per spawn.
//
// The loop hands a child over with add, which never waits on the watcher
// (a mutex held only to take a slice, and an eventfd written only when no
// wake-up is pending). The watcher tells the loop with events:
// evMessage for each message, evExited once the child has exited, after
// the messages of what its pipe held then (what a child wrote before it
// exited comes to the loop before its exit). The pipe is read on until
// its end, or outputGrace after the exit (a grandchild that escaped the
// process group may hold it open), then closed. The pidfd is the loop's,
// which closes it when it reaps the child.
//
// Where a child's descriptors cannot be added to the set, that child has
// the two goroutines instead (watchAlone).
//
// As the logs' poller, the goroutine never blocks in a system call: the
// epoll set is itself in Go's runtime poller, with a deadline for the next
// grace to end, and its other system calls never block and are made raw
// (see package epollset).
type watcher struct {
	c   *Container
	set *epollSet

	mu     sync.Mutex
	adds   []*watched // handed over by the loop, not yet taken
	woken  bool       // the eventfd has been written since adds were last taken
	closed bool       // the container is done: the goroutine ends

	// The goroutine's own.
	items  map[uint64]*watched // by id
	seq    uint64              // the last id given
	graces []*watched          // pipes still open after their child's exit, in the order their graces end
	buf    []byte              // what a read takes
	msgs   []notify.Message    // parsed, not yet sent
}

// watched is one child in the watcher. Its descriptors' events carry its
// id and which of the two it is (see data).
type watched struct {
	p       *proc
	id      uint64
	pidfd   int            // in the set until the exit is seen, then -1 (the loop's to close)
	pipe    int            // our end of the readiness pipe; -1 once closed
	parser  *notify.Parser // made when the pipe first brings something
	graceAt time.Time      // after the exit: when the pipe is closed
}

// The data of an event: a child's id, shifted, and the kind of its
// descriptor; 0 is the eventfd (ids start at 1).
const (
	exitKind = 0
	pipeKind = 1
	wakeData = 0
)

// epollSet is the watcher's epoll set (a type of its own here, so that
// sysOps names it on every system).
type epollSet = epollset.Set

// epollCreate makes an epoll set whose wake-up events carry wakeData
// (sysOps.epoll).
func epollCreate() (*epollSet, error) { return epollset.New(wakeData) }

// epollAdd adds fd to set, level-triggered for reading, with data as its
// events' data (sysOps.epollAdd).
func epollAdd(set *epollSet, fd int, data uint64) error {
	return set.Ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN, data)
}

// newWatcher makes c's watcher, whose goroutine run then runs. On an
// error, nothing is left open.
func newWatcher(c *Container) (*watcher, error) {
	set, err := c.sys.epoll()
	if err != nil {
		return nil, err
	}
	return &watcher{c: c, set: set, items: make(map[uint64]*watched), buf: make([]byte, 4096)}, nil
}

// add hands p, its pidfd (p.pidfd, which stays the loop's) and its
// readiness pipe (ours, which the watcher takes) to the watcher. It is
// the loop's, and never waits on the watcher.
func (w *watcher) add(p *proc, ours int) {
	it := &watched{p: p, pidfd: p.pidfd, pipe: ours}
	w.mu.Lock()
	w.adds = append(w.adds, it)
	wake := !w.woken
	w.woken = true
	w.mu.Unlock()
	if wake {
		w.wake()
	}
}

// close ends the goroutine, once the loop has ended (every child reaped):
// the pipes still open are closed, unread.
func (w *watcher) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.wake()
}

func (w *watcher) wake() { w.set.Wake() }

// run is the watcher's goroutine; c.wg counts it.
func (w *watcher) run() {
	defer w.c.wg.Done()
	events := make([]unix.EpollEvent, 64)
	n := 0 // events to handle
	for {
		w.set.ClearWakeIn(events[:n]) // before the children added are taken
		w.mu.Lock()
		adds, closed := w.adds, w.closed
		w.adds, w.woken = nil, false
		w.mu.Unlock()
		if closed {
			w.end(adds)
			return
		}
		for _, it := range adds {
			w.start(it)
		}
		for i := range events[:n] {
			d := epollset.Data(&events[i])
			it := w.items[d>>1]
			switch {
			case d == wakeData || it == nil:
			case d&1 == pipeKind:
				w.read(it, false)
			default:
				w.exited(it)
			}
		}
		n = w.set.Wait(events, w.expire(time.Now()))
	}
}

// start puts a child's descriptors in the set; where it cannot, the
// child has goroutines of its own.
func (w *watcher) start(it *watched) {
	w.seq++
	it.id = w.seq
	err := w.c.sys.epollAdd(w.set, it.pipe, it.id<<1|pipeKind)
	if err == nil {
		if err = w.c.sys.epollAdd(w.set, it.pidfd, it.id<<1|exitKind); err != nil {
			_ = w.set.Ctl(unix.EPOLL_CTL_DEL, it.pipe, 0, 0)
		}
	}
	if err != nil {
		w.c.logger.Warn("cannot watch a child in the epoll set: goroutines of its own watch it", "child", it.p.name(), "pid", it.p.pid, "error", err)
		w.c.watchAlone(it.p, it.pipe)
		return
	}
	w.items[it.id] = it
}

// exited handles the event of a child's pidfd: once waitid confirms the
// exit, the pidfd leaves the set, what the pipe holds is read and sent,
// then the exit; the pipe stays open for a grace, unless it has ended.
func (w *watcher) exited(it *watched) {
	for {
		var info unix.Siginfo
		err := epollset.Waitid(unix.P_PIDFD, it.pidfd, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT)
		if err == unix.EINTR {
			continue
		}
		if err == nil && info.Signo == 0 {
			return // not yet (cannot happen: a pidfd is readable once its process has exited)
		}
		break // exited (or not waitable by pidfd, before Linux 5.4: the event says it has exited)
	}
	_ = w.set.Ctl(unix.EPOLL_CTL_DEL, it.pidfd, 0, 0)
	it.pidfd = -1
	if it.pipe >= 0 {
		w.read(it, true)
	}
	if it.pipe >= 0 {
		it.graceAt = time.Now().Add(outputGrace)
		w.graces = append(w.graces, it)
	} else {
		delete(w.items, it.id)
	}
	w.c.send(evExited{it.p})
}

// read reads the pipe of it, if open, and sends the messages of the lines
// it ends: a few reads' worth (then the others' turn: the set is level-
// triggered), or with drain, up to its end or until it is empty. At its
// end, the pipe is closed.
func (w *watcher) read(it *watched, drain bool) {
	reads := 4
	if drain {
		reads = 64
	}
	for i := 0; i < reads && it.pipe >= 0; {
		n, err := epollset.Read(it.pipe, w.buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		i++
		if err != nil || n == 0 {
			w.closePipe(it)
			break
		}
		if it.parser == nil {
			it.parser = notify.NewParser(w.c.logger, "child", it.p.name())
		}
		w.msgs = it.parser.Feed(w.buf[:n], w.msgs)
		if n < len(w.buf) && !drain {
			break // empty for now
		}
	}
	w.flush(it)
}

// closePipe closes the pipe of it; a last line without a newline is
// parsed (not sent: see flush).
func (w *watcher) closePipe(it *watched) {
	if it.parser != nil {
		w.msgs = it.parser.End(w.msgs)
	}
	_ = w.set.Ctl(unix.EPOLL_CTL_DEL, it.pipe, 0, 0) // not left there by a copy a fork made
	unix.Close(it.pipe)
	it.pipe = -1
	if it.pidfd < 0 {
		delete(w.items, it.id)
	}
}

// flush sends the messages parsed, of it's child.
func (w *watcher) flush(it *watched) {
	for i := range w.msgs {
		w.c.send(evMessage{it.p, w.msgs[i]})
	}
	clear(w.msgs)
	w.msgs = w.msgs[:0]
}

// expire closes the pipes whose grace has ended (what they hold is read
// first), and returns when the next grace ends (zero: none).
func (w *watcher) expire(now time.Time) time.Time {
	for len(w.graces) > 0 {
		it := w.graces[0]
		if it.pipe >= 0 && it.graceAt.After(now) {
			return it.graceAt
		}
		w.graces[0] = nil
		w.graces = w.graces[1:]
		if it.pipe >= 0 {
			w.read(it, true)
		}
		if it.pipe >= 0 {
			w.closePipe(it)
			w.flush(it)
		}
	}
	return time.Time{}
}

// end closes what the watcher holds: the pipes, its set and its eventfd.
// The pidfds are the loop's, all closed once it has ended.
func (w *watcher) end(adds []*watched) {
	for _, it := range adds {
		unix.Close(it.pipe)
	}
	for _, it := range w.items {
		if it.pipe >= 0 {
			unix.Close(it.pipe)
		}
	}
	clear(w.items)
	w.graces = nil
	w.set.Close()
}
