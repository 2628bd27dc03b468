package logs

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
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
// block, are made raw (see rawRead). The goroutine runs while there are
// pipes to read, and ends with the last.
type poller struct {
	mu      sync.Mutex
	epfd    int
	ep      *os.File        // epfd, in Go's runtime poller
	rc      syscall.RawConn // ep's
	evfd    int             // an eventfd that wakes the loop
	adds    []*pipeReader
	closes  []*Capture
	running bool
	armedN  int           // readers waiting for their pipe's event (the loop's own)
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
	size      int // what a read may bring: grows while reads fill it, shrinks while they bring little
	pace      readPace
	armed     bool          // waiting for the pipe's event, not for a timer
	last      time.Time     // the previous read
	lastData  time.Time     // the previous read that brought something
	wait      time.Duration // the wait before the next read, as set at the previous one
	wakeAt    time.Time     // when to read next, unless armed
}

// add hands c's files to the poller: each is duplicated out of Go's
// runtime poller (and the original closed), made non-blocking and armed.
// On an error nothing has changed: the caller reads the files itself.
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
		if f == nil {
			continue
		}
		fd, err := detach(f)
		if err != nil {
			for _, r := range readers {
				unix.Close(r.fd)
			}
			p.wakeLocked() // the loop may have nothing to read: it ends
			return err
		}
		readers = append(readers, &pipeReader{c: c, stream: Stream(i + 1), fd: fd,
			size: minReadSize, last: time.Now(), pace: c.hub.pace(growPipeFd(fd))})
	}
	for i, f := range c.files {
		if f != nil {
			f.Close()
			c.files[i] = nil
		}
	}
	c.polled = true
	c.running.Add(int32(len(readers)))
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

func growPipeFd(fd int) int {
	size, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return 0
	}
	if size < pipeSize {
		if n, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, pipeSize); err == nil {
			size = n
		}
	}
	return size
}

// open makes the epoll set and the eventfd (under mu).
func (p *poller) open() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return fmt.Errorf("epoll: %w", err)
	}
	// Non-blocking, os.NewFile puts the epoll set in Go's runtime poller,
	// which reports it readable when one of its pipes is.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return fmt.Errorf("epoll: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	rc, err := ep.SyscallConn()
	if err == nil {
		err = ep.SetReadDeadline(time.Time{}) // fails unless in the runtime poller
	}
	if err != nil {
		ep.Close()
		unix.Close(evfd)
		return fmt.Errorf("epoll: %w", err)
	}
	p.epfd, p.evfd, p.ep, p.rc = epfd, evfd, ep, rc
	return nil
}

func (p *poller) wakeLocked() {
	var one = [8]byte{1}
	_, _ = unix.Write(p.evfd, one[:])
}

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

// loop is the poller's goroutine.
func (p *poller) loop() {
	readers := make(map[int32]*pipeReader)
	p.armedN = 0
	events := make([]unix.EpollEvent, 64)
	n := 0 // events to handle
	for {
		// The wake-up is cleared before the work it announced is taken:
		// cleared after, it could clear that of a capture added in
		// between, which would then wait, its pipe not even watched,
		// until something else woke the loop.
		for _, ev := range events[:n] {
			if ev.Fd == int32(p.evfd) {
				var b [8]byte
				_, _ = rawRead(p.evfd, b[:])
			}
		}
		p.mu.Lock()
		adds, closes := p.adds, p.closes
		p.adds, p.closes = nil, nil
		if len(adds) == 0 && len(readers) == 0 {
			// Nothing to read: the loop ends (Capture starts a new one).
			p.running = false
			p.ep.Close() // epfd
			unix.Close(p.evfd)
			close(p.done)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for _, r := range adds {
			readers[int32(r.fd)] = r
			r.arm(unix.EPOLL_CTL_ADD, p.epfd, readers)
		}
		for _, c := range closes {
			for _, r := range readers {
				if r.c == c {
					r.drain(readers)
				}
			}
		}
		now := time.Now()
		for _, ev := range events[:n] {
			if r := readers[ev.Fd]; ev.Fd != int32(p.evfd) && r != nil && r.armed {
				r.armed = false
				p.armedN--
				r.serve(now, true, p.epfd, readers)
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
			if !r.wakeAt.After(now) && !r.serve(now, false, p.epfd, readers) {
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
		n = p.wait(events, next)
	}
}

// wait returns the events of the epoll set, waiting for one until next
// (zero: no deadline) in Go's runtime poller.
func (p *poller) wait(events []unix.EpollEvent, next time.Time) int {
	n := 0
	ready := func(fd uintptr) bool {
		for {
			var err error
			n, err = rawEpollWait(int(fd), events)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				// Cannot happen with a valid set; do not spin.
				time.Sleep(time.Millisecond)
				n = 0
				return true
			}
			return n > 0
		}
	}
	if !next.IsZero() && !next.After(time.Now()) {
		ready(uintptr(p.epfd)) // a timer is due: no wait
		return n
	}
	_ = p.ep.SetReadDeadline(next)
	if err := p.rc.Read(ready); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		time.Sleep(time.Millisecond) // cannot happen; do not spin
	}
	return n
}

// arm asks the epoll set for the pipe's next event (op: EPOLL_CTL_ADD the
// first time, then EPOLL_CTL_MOD).
func (r *pipeReader) arm(op, epfd int, readers map[int32]*pipeReader) {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(r.fd)}
	if err := rawEpollCtl(epfd, op, r.fd, &ev); err != nil {
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
func (r *pipeReader) serve(now time.Time, fresh bool, epfd int, readers map[int32]*pipeReader) bool {
	got, more, open := r.read(readers)
	if !open {
		return false
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
		r.arm(unix.EPOLL_CTL_MOD, epfd, readers)
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
		n, err := rawRead(r.fd, room)
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
	r.finish()
}

func (r *pipeReader) finish() { r.c.readerDone() }

// rawRead, rawEpollWait and rawEpollCtl are the loop's system calls, which
// never block (the pipes are non-blocking, and epoll_wait asks for the
// events at hand only): they are made raw, outside the scheduler's system
// call state. Entering that state when the process was idle wakes the
// runtime's monitor thread (sysmon), which then polls every 20 µs while
// the process is busy: a wake-up of the loop, reading a hundred pipes,
// would cost tens of context switches more.

func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func rawEpollWait(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func rawEpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
