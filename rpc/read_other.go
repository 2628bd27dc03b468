//go:build !unix

package rpc

import (
	"io"
	"syscall"
)

// rawSource returns nil: the transport is read through its Read method.
func rawSource(io.ReadWriteCloser) syscall.RawConn { return nil }

// rawRead is unused where rawSource returns nil.
type rawRead struct{}

// readRaw is never called where rawSource returns nil.
func readRaw(syscall.RawConn, *reader) (int, error) {
	panic("rpc: readRaw without a raw source")
}
