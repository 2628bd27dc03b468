//go:build linux

package rpc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Parker lets idle connections wait for input without a goroutine each:
// a connection given one ([Options.Parker]) that has read nothing for
// [Options.ParkAfter] puts its socket in the Parker's epoll set and its
// reading goroutine returns; when input comes (or the peer hangs up), the
// Parker starts a goroutine that reads on. An idle connection then costs
// its heap memory only, no goroutine and no stack. Closing a parked
// connection (or ending its context) finishes it as any other.
//
// One Parker serves any number of connections. Run must run for parked
// connections to be woken; it should outlive them.
type Parker struct {
	file *os.File // the epoll instance, waited on through the runtime's poller
	raw  syscall.RawConn
	epfd int

	mu     sync.Mutex
	conns  map[int]*Conn // by socket descriptor
	closed bool          // Run has ended: epfd is closed
}

// NewParker makes a Parker (an epoll instance).
func NewParker() (*Parker, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("parker: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("parker: %w", err)
	}
	f := os.NewFile(uintptr(fd), "parker")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("parker: %w", err)
	}
	return &Parker{file: f, raw: raw, epfd: fd, conns: make(map[int]*Conn)}, nil
}

// Run wakes parked connections as input comes for them, until ctx ends;
// then it releases the epoll instance, and a connection still parked stays
// so until it is closed. It returns nil after ctx ends.
func (p *Parker) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.closed = true // no epoll_ctl from now on: the descriptor goes
		p.mu.Unlock()
		p.file.Close()
	})
	defer stop()
	events := make([]unix.EpollEvent, 64)
	err := p.raw.Read(func(fd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(fd), events, 0)
			if err == unix.EINTR {
				continue
			}
			for _, ev := range events[:max(n, 0)] {
				p.wake(int(ev.Fd))
			}
			if n < len(events) {
				return false // wait until more comes
			}
		}
	})
	if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
		return nil
	}
	return fmt.Errorf("parker: %w", err)
}

// park adds a connection's socket to the set, for one wake-up; false when
// it cannot (the Parker has ended).
func (p *Parker) park(c *Conn, fd int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return false
	}
	p.conns[fd] = c
	c.park.fd = fd
	return true
}

// forget takes a connection's socket out of the set: it is being woken or
// closed (the socket is still open).
func (p *Parker) forget(c *Conn, fd int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[fd] == c {
		delete(p.conns, fd)
	}
	if !p.closed {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
}

// wake hands a socket's wake-up to its connection.
func (p *Parker) wake(fd int) {
	p.mu.Lock()
	c := p.conns[fd]
	p.mu.Unlock()
	if c != nil {
		c.wake()
	}
}

// Parked returns how many connections are parked.
func (p *Parker) Parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}
