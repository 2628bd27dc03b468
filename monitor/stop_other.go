//go:build !linux

package monitor

import (
	"context"
	"errors"
	"time"
)

// errUnsupported is returned where stopping processes is not implemented.
var errUnsupported = errors.New("monitor: stopping processes is only implemented on Linux")

func stopProcess(ctx context.Context, pid int, grace time.Duration) (stopOutcome, error) {
	return 0, errUnsupported
}
