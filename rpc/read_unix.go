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

// readRaw reads once from a socket's descriptor into buf[end:], through
// the runtime's poller (so deadlines and Close apply as to any read). The
// buffer is taken only once the socket has input, and given back while it
// has none if it holds nothing (end is 0): a connection waiting for its
// next line holds no buffer.
func readRaw(raw syscall.RawConn, buf []byte, end int) ([]byte, int, error) {
	var (
		n    int
		rerr error
	)
	err := raw.Read(func(fd uintptr) bool {
		if buf == nil {
			buf = takeBuffer()
		}
		for {
			n, rerr = syscall.Read(int(fd), buf[end:])
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			if end == 0 {
				giveBuffer(buf)
				buf = nil
			}
			return false // wait until readable
		}
		return true
	})
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
