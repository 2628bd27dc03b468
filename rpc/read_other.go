//go:build !unix

package rpc

import (
	"io"
	"syscall"
)

// rawSource returns nil: the transport is read through its Read method.
func rawSource(io.ReadWriteCloser) syscall.RawConn { return nil }

// readRaw is never called where rawSource returns nil.
func readRaw(syscall.RawConn, []byte, int) ([]byte, int, error) {
	panic("rpc: readRaw without a raw source")
}
