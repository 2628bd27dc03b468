//go:build !linux

package supervisor

import (
	"context"
	"errors"
	"net"
	"os"
)

var errUnsupported = errors.New("supervisor: the supervisor socket needs Linux (peer credentials)")

// Listener is the supervisor's Unix socket; only Linux has it.
type Listener struct{ net.Listener }

// Listen returns an error: only Linux is supported.
func Listen(path string, opts ListenOptions) (*Listener, error) { return nil, errUnsupported }

// FileListener returns an error: only Linux is supported.
func FileListener(f *os.File, path string, opts ListenOptions) (*Listener, error) {
	return nil, errUnsupported
}

func dialSocket(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

// SetPermissions is unsupported here.
func SetPermissions(path string, opts ListenOptions) error { return errUnsupported }
