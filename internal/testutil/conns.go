package testutil

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ClosedByPeer counts the connections of conns that the other side closes
// within wait (a read ends other than by its deadline), reading them all
// at once: a server that refuses connections beyond a limit closes them
// as soon as it accepts them, and leaves the ones it serves open.
func ClosedByPeer(conns []net.Conn, wait time.Duration) int {
	var closed atomic.Int32
	var reads sync.WaitGroup
	for _, c := range conns {
		reads.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(wait))
			if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				closed.Add(1)
			}
		})
	}
	reads.Wait()
	return int(closed.Load())
}
