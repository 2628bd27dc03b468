//go:build unix

package rpc

import (
	"fmt"
	"io"
	"net"
	"syscall"
)

// rawSource returns the descriptor of a socket transport (a net.Conn with
// one), which readRaw reads; nil for any other transport.
func rawSource(rwc io.ReadWriteCloser) syscall.RawConn {
	if _, ok := rwc.(net.Conn); !ok {
		return nil
	}
	sc, ok := rwc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// rawRead is the scratch of one read of a socket's descriptor, kept in
// the reader with its fill method made into a func once, so that a read
// allocates nothing.
type rawRead struct {
	n    int
	err  error
	fill func(fd uintptr) bool
}

// readRaw reads once from a socket's descriptor into r.buf[r.end:],
// through the runtime's poller (so deadlines and Close apply as to any
// read), and returns the count read. The buffer is taken only once the
// socket has input, and given back while it has none if it holds nothing
// (r.end is 0, and no chunk of a long line is read): a connection waiting
// for its next line holds no buffer.
func readRaw(raw syscall.RawConn, r *reader) (int, error) {
	if r.rr.fill == nil {
		r.rr.fill = r.readFD
	}
	r.rr.n, r.rr.err = 0, nil
	err := raw.Read(r.rr.fill)
	n, rerr := r.rr.n, r.rr.err
	r.rr.err = nil
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, fmt.Errorf("read: %w", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readFD reads the descriptor, as raw.Read asks: false (wait until
// readable) while it has nothing.
func (r *reader) readFD(fd uintptr) bool {
	if r.buf == nil {
		r.buf = takeBuffer()
	}
	for {
		r.rr.n, r.rr.err = syscall.Read(int(fd), r.buf[r.end:])
		if r.rr.err != syscall.EINTR {
			break
		}
	}
	if r.rr.err == syscall.EAGAIN {
		if r.end == 0 && r.long == nil {
			giveBuffer(r.buf)
			r.buf = nil
		}
		return false
	}
	return true
}
