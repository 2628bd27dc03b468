package epollset

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Set is an epoll set in Go's runtime poller, with its wake-up eventfd.
// Wake may be called from any goroutine; the other methods are the
// serving goroutine's.
type Set struct {
	fd   int
	evfd int
	wake uint64
	f    *os.File // fd, in the runtime poller
	rc   syscall.RawConn
}

// New makes a set whose wake-up events carry wake as their data (see
// Data). On an error nothing is left open.
func New(wake uint64) (*Set, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	s := &Set{fd: fd, evfd: evfd, wake: wake}
	if err := s.Ctl(unix.EPOLL_CTL_ADD, evfd, unix.EPOLLIN, wake); err != nil {
		unix.Close(fd)
		unix.Close(evfd)
		return nil, err
	}
	// Non-blocking, os.NewFile puts the set in the runtime poller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		unix.Close(evfd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	s.f = os.NewFile(uintptr(fd), "epoll")
	s.rc, err = s.f.SyscallConn()
	if err == nil {
		err = s.f.SetReadDeadline(time.Time{}) // fails unless in the runtime poller
	}
	if err != nil {
		s.f.Close()
		unix.Close(evfd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	return s, nil
}

// Ctl adds (EPOLL_CTL_ADD), changes (EPOLL_CTL_MOD) or removes
// (EPOLL_CTL_DEL) fd's interest in the set, its events carrying data.
func (s *Set) Ctl(op, fd int, events uint32, data uint64) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(uint32(data)), Pad: int32(uint32(data >> 32))}
	_, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(s.fd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if errno != 0 {
		return fmt.Errorf("epoll_ctl: %w", errno)
	}
	return nil
}

// Data is the data of an event, as given to Ctl.
func Data(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// IsWake says whether ev is the set's wake-up.
func (s *Set) IsWake(ev *unix.EpollEvent) bool { return Data(ev) == s.wake }

// Wake wakes the serving goroutine (its Wait returns the wake-up event).
func (s *Set) Wake() {
	one := [8]byte{1}
	_, _ = Write(s.evfd, one[:])
}

// ClearWake clears the wake-up: call it before taking the work it
// announced.
func (s *Set) ClearWake() {
	var b [8]byte
	_, _ = Read(s.evfd, b[:])
}

// ClearWakeIn clears the wake-up if events (what Wait returned) hold it.
// The serving goroutine calls it before it takes the work a wake-up
// announces (work handed over under a lock, say): cleared after, it could
// clear the wake-up of work handed over in between, which would then wait
// until something else woke the goroutine.
func (s *Set) ClearWakeIn(events []unix.EpollEvent) {
	for i := range events {
		if s.IsWake(&events[i]) {
			s.ClearWake()
		}
	}
}

// Wait fills events with the set's events, waiting in the runtime poller
// for one until until (zero: no deadline; past: no wait), and returns how
// many it got (0 when the deadline passed).
func (s *Set) Wait(events []unix.EpollEvent, until time.Time) int {
	n := 0
	ready := func(fd uintptr) bool {
		for {
			var err error
			n, err = epollWait(int(fd), events)
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
	if !until.IsZero() && !until.After(time.Now()) {
		ready(uintptr(s.fd)) // due: no wait
		return n
	}
	_ = s.f.SetReadDeadline(until)
	if err := s.rc.Read(ready); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		time.Sleep(time.Millisecond) // cannot happen; do not spin
	}
	return n
}

// Close closes the set and its eventfd; the descriptors still in it are
// the caller's.
func (s *Set) Close() {
	s.f.Close()
	unix.Close(s.evfd)
}

func epollWait(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Read reads a non-blocking descriptor, raw.
func Read(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Write writes to a non-blocking descriptor, raw.
func Write(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Waitid is waitid(2), raw: for options with WNOHANG only.
func Waitid(idtype, id int, info *unix.Siginfo, options int) error {
	_, _, errno := unix.RawSyscall6(unix.SYS_WAITID, uintptr(idtype), uintptr(id), uintptr(unsafe.Pointer(info)), uintptr(options), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
