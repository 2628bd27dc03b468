package logs

import (
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// poller reads every capture's pipes of a hub from one goroutine, with an
// epoll set of its own. Go's runtime poller would do, but it registers a
// pipe edge-triggered for good: every write of a chatty child wakes it,
// even while the reader waits on purpose to gather lines. Here a pipe is
// armed for one event at a time (EPOLLONESHOT), and re-armed when its
// reader wants more: a child's writes in between cost the controller
// nothing. The goroutine runs while there are pipes to read, and ends
// with the last.
type poller struct {
	mu      sync.Mutex
	epfd    int
	evfd    int // an eventfd that wakes the loop
	adds    []*pipeReader
	closes  []*Capture
	running bool
	done    chan struct{} // closed when the loop has ended
}

// pipeReader is one stream of a capture, read by the poller.
type pipeReader struct {
	c        *Capture
	stream   Stream
	fd       int
	buf      []byte
	size     int // how much one read may take; grows while reads fill it
	have     int // the start of a line carried over
	last     time.Time
	maxDelay time.Duration
	wakeAt   time.Time // when to re-arm; zero: armed
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
		size := growPipeFd(fd)
		maxDelay := c.hub.readDelay
		if maxDelay == 0 {
			maxDelay = time.Duration(size) * time.Second / burstRate
		}
		readers = append(readers, &pipeReader{c: c, stream: Stream(i + 1), fd: fd,
			size: minReadSize, last: time.Now(), maxDelay: min(maxDelay, maxReadDelay)})
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
	p.epfd, p.evfd = epfd, evfd
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
	events := make([]unix.EpollEvent, 64)
	arm := func(r *pipeReader, op int) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(r.fd)}
		if err := unix.EpollCtl(p.epfd, op, r.fd, &ev); err != nil {
			r.c.hub.logger.Warn("logs: cannot watch a pipe", "process", r.c.id.Name(), "error", err)
			r.end(readers)
		}
	}
	for {
		p.mu.Lock()
		adds, closes := p.adds, p.closes
		p.adds, p.closes = nil, nil
		if len(adds) == 0 && len(readers) == 0 {
			// Nothing to read: the loop ends (Capture starts a new one).
			p.running = false
			unix.Close(p.epfd)
			unix.Close(p.evfd)
			close(p.done)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for _, r := range adds {
			readers[int32(r.fd)] = r
			arm(r, unix.EPOLL_CTL_ADD)
		}
		for _, c := range closes {
			for _, r := range readers {
				if r.c == c {
					r.drain(readers)
				}
			}
		}
		if len(readers) == 0 {
			continue
		}
		timeout := -1
		now := time.Now()
		for _, r := range readers {
			if !r.wakeAt.IsZero() {
				ms := int((r.wakeAt.Sub(now) + time.Millisecond - 1) / time.Millisecond)
				if timeout < 0 || ms < timeout {
					timeout = max(ms, 0)
				}
			}
		}
		n, err := unix.EpollWait(p.epfd, events, timeout)
		if err != nil && err != unix.EINTR {
			// Cannot happen with a valid set; do not spin.
			time.Sleep(time.Millisecond)
			continue
		}
		now = time.Now()
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd == int32(p.evfd) {
				var b [8]byte
				_, _ = unix.Read(p.evfd, b[:])
				continue
			}
			if r := readers[ev.Fd]; r != nil {
				if delay, open := r.read(now, readers); open {
					if delay > 0 {
						r.wakeAt = now.Add(delay)
					} else {
						arm(r, unix.EPOLL_CTL_MOD)
					}
				}
			}
		}
		for _, r := range readers {
			if !r.wakeAt.IsZero() && !r.wakeAt.After(now) {
				r.wakeAt = time.Time{}
				arm(r, unix.EPOLL_CTL_MOD)
			}
		}
	}
}

// read takes what the pipe holds, and says how long to wait before the
// next read (0: arm it now), or that the pipe has ended.
func (r *pipeReader) read(now time.Time, readers map[int32]*pipeReader) (time.Duration, bool) {
	max := r.c.hub.maxLine
	if r.buf == nil {
		r.buf = make([]byte, max+r.size)
	}
	got := 0
	for range 4 { // then the others' turn
		n, err := unix.Read(r.fd, r.buf[r.have:r.have+r.size])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil || n == 0 {
			r.end(readers)
			return 0, false
		}
		got += n
		r.c.bytes.Add(uint64(n))
		full := n == r.size
		if full && r.size < readSize {
			r.size *= 4
			r.buf = append(r.buf[:r.have+n], make([]byte, max+r.size-r.have-n)...)
		}
		r.have = r.c.frame(r.buf, r.have+n, r.stream, false)
		if !full {
			break
		}
	}
	elapsed := now.Sub(r.last)
	r.last = now
	if got >= gatherBytes || got == 0 || r.maxDelay < time.Millisecond {
		return 0, true
	}
	d := time.Duration(float64(elapsed) * gatherBytes / float64(got))
	if d = min(d, r.maxDelay); d < time.Millisecond {
		return 0, true
	}
	return d, true
}

// drain reads what the pipe holds now, then ends it (Capture.Close).
func (r *pipeReader) drain(readers map[int32]*pipeReader) {
	for range 64 {
		if _, open := r.read(time.Now(), readers); !open {
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
		r.c.frame(r.buf, r.have, r.stream, true)
		r.have = 0
	}
	delete(readers, int32(r.fd))
	unix.Close(r.fd) // leaves the epoll set
	r.finish()
}

func (r *pipeReader) finish() { r.c.readerDone() }
