package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// checker makes the attempts of one probe and holds what they keep from
// one to the next (an HTTP connection). The scheduler never runs two
// attempts of a checker at once, and calls close once, never during check.
type checker interface {
	// check makes one attempt of at most timeout; ctx is cancelled when
	// the probe is removed or the scheduler stops.
	check(ctx context.Context, timeout time.Duration) error
	close()
}

func newChecker(spec Spec, run Runner) (checker, error) {
	switch {
	case spec.HTTP != nil:
		return newHTTPChecker(spec.HTTP)
	case spec.TCP != nil:
		return &tcpChecker{addr: spec.TCP.Address}, nil
	default:
		return &execChecker{argv: spec.Exec.Argv, env: spec.Exec.Env, dir: spec.Exec.Dir, run: run}, nil
	}
}

// timedOut wraps err, an attempt's error, in ErrTimeout when it is a
// deadline's.
func timedOut(err error, timeout time.Duration) error {
	if err == nil || errors.Is(err, ErrTimeout) {
		return err
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w after %v: %w", ErrTimeout, timeout, err)
	}
	return err
}

// tcpChecker connects and closes.
type tcpChecker struct{ addr string }

func (c *tcpChecker) check(ctx context.Context, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout, KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return timedOut(err, timeout)
	}
	_ = conn.Close()
	return nil
}

func (c *tcpChecker) close() {}

// execChecker runs a command through a Runner.
type execChecker struct {
	argv, env []string
	dir       string
	run       Runner
}

func (c *execChecker) check(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	code, err := c.run(ctx, c.argv, c.env, c.dir)
	if err == nil && code == 0 {
		return nil
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		if err == nil {
			err = context.DeadlineExceeded
		}
		return fmt.Errorf("%w after %v: %s killed: %w", ErrTimeout, timeout, c.argv[0], err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.argv[0], err)
	}
	return fmt.Errorf("%s: exit status %d", c.argv[0], code)
}

func (c *execChecker) close() {}
