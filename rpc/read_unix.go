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

// rawRead is one read of a socket's descriptor: its buffer, where to
// read into it, and the outcome. A Conn keeps one, with its fill method
// made into a func once, so that a read allocates nothing.
type rawRead struct {
	buf  []byte
	end  int
	n    int
	err  error
	fill func(fd uintptr) bool
}

// readRaw reads once from a socket's descriptor into buf[end:], through
// the runtime's poller (so deadlines and Close apply as to any read). The
// buffer is taken only once the socket has input, and given back while it
// has none if it holds nothing (end is 0): a connection waiting for its
// next line holds no buffer.
func readRaw(raw syscall.RawConn, r *rawRead, buf []byte, end int) ([]byte, int, error) {
	if r.fill == nil {
		r.fill = r.readFD
	}
	r.buf, r.end, r.n, r.err = buf, end, 0, nil
	err := raw.Read(r.fill)
	buf, n, rerr := r.buf, r.n, r.err
	r.buf, r.err = nil, nil
	switch {
	case err != nil:
		return buf, 0, err
	case rerr != nil:
		return buf, 0, fmt.Errorf("read: %w", rerr)
	case n == 0:
		return buf, 0, io.EOF
	}
	return buf, n, nil
}

// readFD reads the descriptor, as raw.Read asks: false (wait until
// readable) while it has nothing.
func (r *rawRead) readFD(fd uintptr) bool {
	if r.buf == nil {
		r.buf = takeBuffer()
	}
	for {
		r.n, r.err = syscall.Read(int(fd), r.buf[r.end:])
		if r.err != syscall.EINTR {
			break
		}
	}
	if r.err == syscall.EAGAIN {
		if r.end == 0 {
			giveBuffer(r.buf)
			r.buf = nil
		}
		return false
	}
	return true
}
