//go:build !linux

package rpc

import "io"

// peerGone reports whether the peer has closed the connection altogether;
// outside Linux it cannot tell, and takes the end of input as a half-close.
func peerGone(rwc io.ReadWriteCloser) bool { return false }
