//go:build linux

package rpc

import (
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerGone reports whether the peer of a socket has closed it altogether,
// not only shut down its sending side: for a Unix socket the kernel then
// reports POLLHUP (both directions shut), and for a half-close only
// POLLRDHUP. A transport that is not a socket is taken as half-closed.
func peerGone(rwc io.ReadWriteCloser) bool {
	sc, ok := rwc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	err = raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		n, perr := unix.Poll(fds, 0)
		gone = perr == nil && n == 1 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
	})
	return gone || err != nil
}
