package notify

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"
)

// WatchdogInterval returns systemd's watchdog interval from WATCHDOG_USEC,
// read through getenv (nil means os.Getenv), and whether the watchdog is
// enabled for this process: WATCHDOG_USEC set to a positive number and
// WATCHDOG_PID unset, empty or equal to os.Getpid(). A WATCHDOG_USEC or
// WATCHDOG_PID that is not a positive number is an error wrapping
// ErrBadEnvironment.
func WatchdogInterval(getenv func(string) string) (time.Duration, bool, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	v := getenv(EnvWatchdogUsec)
	if v == "" {
		return 0, false, nil
	}
	usec, err := strconv.ParseInt(v, 10, 64)
	if err != nil || usec <= 0 {
		return 0, false, fmt.Errorf("%w: %s=%q is not a positive number of microseconds", ErrBadEnvironment, EnvWatchdogUsec, v)
	}
	if p := getenv(EnvWatchdogPID); p != "" {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return 0, false, fmt.Errorf("%w: %s=%q is not a process id", ErrBadEnvironment, EnvWatchdogPID, p)
		}
		if pid != os.Getpid() {
			return 0, false, nil
		}
	}
	return time.Duration(usec) * time.Microsecond, true, nil
}

// Watchdog feeds systemd's watchdog: when WatchdogInterval says it is
// enabled, it sends a Watchdog message (WATCHDOG=1) through c at once and
// then every half interval, each time only if healthy() is true (a nil
// healthy counts as always true), until ctx ends; it then returns nil. It
// returns nil at once when the watchdog is not enabled, the environment's
// error when it is malformed, and the first error of c.Send (wrapped).
//
// Only the systemd client sends Watchdog messages; with the other clients
// Watchdog runs but nothing is sent.
func Watchdog(ctx context.Context, c Client, getenv func(string) string, healthy func() bool) error {
	interval, ok, err := WatchdogInterval(getenv)
	if err != nil || !ok {
		return err
	}
	period := interval / 2
	if period <= 0 {
		period = time.Microsecond
	}
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		if healthy == nil || healthy() {
			if err := c.Send(Message{Watchdog: true}); err != nil {
				return fmt.Errorf("notify: watchdog: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}
