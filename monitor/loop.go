package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// clock is the time source of the loops: the real one, or a fake in tests.
type clock interface {
	Now() time.Time
	// SleepUntil waits until t, or until ctx ends (returning its error).
	SleepUntil(ctx context.Context, t time.Time) error
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// nextAligned returns the first multiple of interval on the wall clock
// (counted from the zero time, so a divisor of a day aligns to UTC) that is
// strictly after now.
func nextAligned(now time.Time, interval time.Duration) time.Time {
	return now.Truncate(interval).Add(interval)
}

// safeRun runs body, turning a panic into an error.
func safeRun(ctx context.Context, body func(ctx context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return body(ctx)
}

// runAligned calls body at every multiple of interval on the clock until
// ctx ends. An error or panic of body is logged under name and the loop
// goes on. It returns ctx's error.
func runAligned(ctx context.Context, clk clock, interval time.Duration, logger *slog.Logger, name string, body func(ctx context.Context) error) error {
	for {
		if err := clk.SleepUntil(ctx, nextAligned(clk.Now(), interval)); err != nil {
			return err
		}
		if err := safeRun(ctx, body); err != nil && ctx.Err() == nil {
			logger.Error(name+" failed", "error", err)
		}
	}
}

// earliest returns the earlier of a and b.
func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
