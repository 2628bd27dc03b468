package logs

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/internal/epollset"
)

// poller reads every capture's pipes of a hub from one goroutine, with an
// epoll set of its own. Go's runtime poller would do, but it registers a
// pipe edge-triggered for good: every write of a chatty child wakes it,
// even while the reader waits on purpose to gather lines. Here a pipe is
// armed for one event at a time (EPOLLONESHOT), and only when a read
// found it empty: a pipe that has something at each read is read on a
// timer (see readPace), and a child's writes in between cost the
// controller nothing. The timers of the pipes come due together: a read
// is due at a moment of a grid its wait picks (see gridWake), so a hundred
// children writing at a steady pace, each read every 100 ms, cost ten
// wake-ups a second, not a hundred times as many.
//
// The loop never blocks in a system call: its epoll set is itself watched
// by Go's runtime poller, with a read deadline for the next timer, so it
// waits parked like any goroutine on a file, holding no thread (a system
// call that blocks keeps the runtime's monitor thread, sysmon, awake to
// take its processor back), and its other system calls, which never
// block, are made raw (see package epollset). The goroutine runs while there are
// pipes to read, and ends with the last.
type poller struct {
	mu      sync.Mutex
	set     *epollset.Set // the loop's, while it runs
	adds    []*pipeReader
	closes  []*Capture
	running bool
	armedN  int           // readers waiting for their pipe's event (the loop's own)
	live    atomic.Int32  // readers not yet ended (see wait)
	epoch   time.Time     // when the loop started: the timers' grid (see gridWake) starts there
	done    chan struct{} // closed when the loop has ended
}

// pipeReader is one stream of a capture, read by the poller.
type pipeReader struct {
	c      *Capture
	stream Stream
	fd     int
	// The reads go into buf, a chunk of memory that the batches share:
	// what they took of it never changes. buf[off:off+have] is the start
	// of a line carried over; a read takes the room after it.
	buf       []byte
	off, have int
	size      int           // what a read may bring: grows while reads fill it, shrinks while they bring little
	pace      readPace      // the zero one (never waits) until the pipe is written to
	tried     bool          // to grow the pipe, once it was written to
	grown     int           // what growing it took of the hub's share
	armed     bool          // waiting for the pipe's event, not for a timer
	last      time.Time     // the previous read
	lastData  time.Time     // the previous read that brought something
	wait      time.Duration // the wait before the next read, as set at the previous one
	wakeAt    time.Time     // when to read next, unless armed
}

// add hands c's files to the poller: each is duplicated out of Go's
// runtime poller (and the original closed), made non-blocking and armed;
// or its descriptors, as they are, made non-blocking. On an error nothing
// has changed: the caller reads the files (or descriptors) itself.
func (p *poller) add(c *Capture) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		if err := p.open(); err != nil {
			return err
		}
		p.running = true
		p.epoch = time.Now()
		p.done = make(chan struct{})
		go p.loop()
	}
	var readers []*pipeReader
	for i, f := range c.files {
		fd, err := c.fds[i], error(nil)
		switch {
		case f != nil:
			fd, err = detach(f)
		case fd >= 0:
			err = unix.SetNonblock(fd, true)
		default:
			continue
		}
		if err != nil {
			for _, r := range readers {
				if c.fds[r.stream-1] < 0 {
					unix.Close(r.fd) // a file's duplicate: the file stays the caller's
				}
			}
			p.wakeLocked() // the loop may have nothing to read: it ends
			return err
		}
		readers = append(readers, &pipeReader{c: c, stream: Stream(i + 1), fd: fd,
			size: minReadSize, last: time.Now()}) // grown, and paced, once written to (see pipeSize)
	}
	for i, f := range c.files {
		if f != nil {
			f.Close()
			c.files[i] = nil
		}
	}
	c.fds = [2]int{-1, -1} // the readers' now
	c.polled = true
	c.running.Add(int32(len(readers)))
	p.live.Add(int32(len(readers)))
	p.adds = append(p.adds, readers...)
	p.wakeLocked()
	return nil
}

// detach returns a non-blocking duplicate of f's descriptor, outside Go's
// runtime poller.
func detach(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(orig uintptr) {
		fd, err = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	})
	if cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, fmt.Errorf("dup: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// open makes the epoll set (under mu). Its wake-up's data is no pipe's
// descriptor (one above 32 bits).
func (p *poller) open() error {
	set, err := epollset.New(wakeData)
	if err != nil {
		return err
	}
	p.set = set
	return nil
}

// wakeData is the data of the set's wake-up events.
const wakeData = 1 << 32

func (p *poller) wakeLocked() { p.set.Wake() }

// close asks the loop to end c's reads: what the pipes hold now is read,
// then they are closed.
func (p *poller) close(c *Capture) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		p.closes = append(p.closes, c)
		p.wakeLocked()
	}
}

// wait waits, within ctx, for the loop to end when every pipe it read has
// ended (it ends with its last pipe), so that a hub closed after its
// captures leaves no goroutine or descriptor behind; while captures go on
// (Hub.Close leaves them to their owners), it does not wait.
func (p *poller) wait(ctx context.Context) {
	p.mu.Lock()
	running, done := p.running, p.done
	p.mu.Unlock()
	if !running || p.live.Load() > 0 {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// loop is the poller's goroutine.
func (p *poller) loop() {
	readers := make(map[int32]*pipeReader)
	p.armedN = 0
	events := make([]unix.EpollEvent, 64)
	n := 0 // events to handle
	for {
		p.set.ClearWakeIn(events[:n]) // before the captures added are taken
		p.mu.Lock()
		adds, closes := p.adds, p.closes
		p.adds, p.closes = nil, nil
		if len(adds) == 0 && len(readers) == 0 {
			// Nothing to read: the loop ends (Capture starts a new one).
			p.running = false
			p.set.Close()
			close(p.done)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for _, r := range adds {
			readers[int32(r.fd)] = r
			r.arm(unix.EPOLL_CTL_ADD, p.set, readers)
		}
		for _, c := range closes {
			for _, r := range readers {
				if r.c == c {
					r.drain(readers)
				}
			}
		}
		now := time.Now()
		for i := range events[:n] {
			if r := readers[events[i].Fd]; !p.set.IsWake(&events[i]) && r != nil && r.armed {
				r.armed = false
				p.armedN--
				r.serve(now, true, p.set, readers)
			}
		}
		// The timers: every pipe due is read now (pipes read at a like
		// pace come due together, see gridWake). None is
		// looked at when every pipe waits for its event, the usual case of
		// quiet workers: with a thousand, every wake-up (a restart's new
		// capture, a line) looked at two thousand readers, 5% of vigil
		// run's CPU while workers were killed and restarted.
		var next time.Time
		for _, r := range readers {
			if p.armedN == len(readers) {
				break // (then next stays zero: a pipe on a timer is not armed)
			}
			if r.armed {
				continue
			}
			// Only when due: read early, a pipe would come due at the
			// same moment of the grid again, and be read twice.
			if !r.wakeAt.After(now) && !r.serve(now, false, p.set, readers) {
				continue
			}
			if !r.armed && (next.IsZero() || r.wakeAt.Before(next)) {
				next = r.wakeAt
			}
		}
		if len(readers) == 0 {
			n = 0
			continue
		}
		n = p.set.Wait(events, next)
	}
}

// arm asks the epoll set for the pipe's next event (op: EPOLL_CTL_ADD the
// first time, then EPOLL_CTL_MOD).
func (r *pipeReader) arm(op int, set *epollset.Set, readers map[int32]*pipeReader) {
	if err := set.Ctl(op, r.fd, unix.EPOLLIN|unix.EPOLLONESHOT, uint64(r.fd)); err != nil {
		r.c.hub.logger.Warn("logs: cannot watch a pipe", "process", r.c.id.Name(), "error", err)
		r.end(readers)
		return
	}
	if !r.armed {
		r.c.hub.poll.armedN++
	}
	r.armed = true
}

// serve reads the pipe and sets when to read it next: at once when it may
// hold more; at its next event (armed) when it was empty, or when the read
// brought a line after a silence; else after the wait its pace allows
// (see readPace). fresh says the pipe's event woke it: it was empty until
// a moment ago, and the pace is that since the previous read that brought
// something. It returns false when the pipe has ended.
func (r *pipeReader) serve(now time.Time, fresh bool, set *epollset.Set, readers map[int32]*pipeReader) bool {
	got, more, open := r.read(readers)
	if !open {
		return false
	}
	if got > 0 && !r.tried {
		r.tried = true
		r.pace, r.grown = r.c.hub.growPipeFd(r.fd) // see pipeSize
	}
	since := now.Sub(r.last)
	if fresh {
		since = now.Sub(r.lastData)
	}
	r.last = now
	if got > 0 {
		r.lastData = now
	}
	if got == 0 || fresh && !more && since >= r.pace.quiet() {
		if got == 0 && r.have == 0 {
			r.buf, r.off = nil, 0 // an idle pipe holds no memory
		}
		r.wait = 0 // the pace starts anew: the next wait is at most burst
		r.arm(unix.EPOLL_CTL_MOD, set, readers)
		return r.armed
	}
	d := time.Duration(0)
	if !more {
		d = r.pace.next(got, since, r.wait)
	}
	r.wait, r.wakeAt = d, gridWake(r.c.hub.poll.epoch, now, d)
	return true
}

// read takes what the pipe holds, at most 4 reads' worth (then the
// others' turn): the bytes it got, whether the pipe may hold more, and
// whether it is still open.
func (r *pipeReader) read(readers map[int32]*pipeReader) (got int, more, open bool) {
	for range 4 {
		if len(r.buf)-r.off-r.have < min(r.size, minRoom) {
			r.newChunk()
		}
		room := r.buf[r.off+r.have:]
		n, err := epollset.Read(r.fd, room)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return got, false, true
		}
		if err != nil || n == 0 {
			r.end(readers)
			return got, false, false
		}
		got += n
		r.c.bytes.Add(uint64(n))
		took := r.c.frameLines(r.buf[r.off:r.off+r.have+n], r.stream, false, false)
		r.off, r.have = r.off+took, r.have+n-took
		if n < len(room) {
			if n < r.size/4 {
				r.size = max(r.size/2, minReadSize)
			}
			return got, false, true
		}
		if len(room) >= r.size {
			r.size = min(4*r.size, readSize)
		}
	}
	return got, true, true
}

// Chunks.
const (
	// chunkSize is the size of a chunk unless a read needs more: up to
	// 32 KiB, it is a small object to Go's allocator, cheaper than a
	// large one.
	chunkSize = 32 << 10
	// minRoom: a read gets a new chunk when the one it has has less room
	// than this or size (a read that fills it reads again).
	minRoom = 8 << 10
)

// newChunk moves the start of a line carried over to a new chunk (the old
// one stays with its batches).
func (r *pipeReader) newChunk() {
	buf := make([]byte, max(min(4*r.size, chunkSize), r.have+r.size))
	copy(buf, r.buf[r.off:r.off+r.have])
	r.buf, r.off = buf, 0
}

// drain reads what the pipe holds now, then ends it (Capture.Close).
func (r *pipeReader) drain(readers map[int32]*pipeReader) {
	for range 64 {
		if _, _, open := r.read(readers); !open {
			return
		}
		if n, err := unix.IoctlGetInt(r.fd, unix.TIOCINQ); err != nil || n == 0 {
			break
		}
	}
	r.end(readers)
}

// end hands on the last line, closes the pipe and tells the capture.
func (r *pipeReader) end(readers map[int32]*pipeReader) {
	if r.have > 0 {
		r.c.frameLines(r.buf[r.off:r.off+r.have], r.stream, true, false)
		r.have = 0
	}
	if r.armed {
		r.armed = false
		r.c.hub.poll.armedN--
	}
	delete(readers, int32(r.fd))
	unix.Close(r.fd) // leaves the epoll set
	r.c.hub.pipes.give(r.grown)
	r.grown = 0
	r.finish()
}

func (r *pipeReader) finish() {
	r.c.hub.poll.live.Add(-1)
	r.c.readerDone()
}
