package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigild/vigil/notify"
)

// Notifier sends readiness messages to the controller that started this
// process. Outside vigil (none of NOTIFY_PIPE, NOTIFY_SOCKET, NOTIFY_LOG
// set) every method is a silent no-op that returns nil. A nil *Notifier is
// also a no-op. Its methods are safe for concurrent use.
type Notifier struct {
	client notify.Client
	logger *slog.Logger
}

// NewNotifier returns a Notifier chosen from the environment, read through
// getenv (nil means os.Getenv); logger (nil discards) gets the failures of
// [Notifier.Beat]. When a variable is set to something unusable (for
// example NOTIFY_PIPE=abc), it returns a usable no-op Notifier together with
// an error wrapping notify.ErrBadEnvironment that names the variable, so a
// program may log the error and carry on.
func NewNotifier(getenv func(string) string, logger *slog.Logger) (*Notifier, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c, err := notify.NewOrNop(getenv)
	if err != nil {
		return &Notifier{client: notify.Nop{}, logger: logger}, fmt.Errorf("worker: readiness: %w", err)
	}
	return &Notifier{client: c, logger: logger}, nil
}

// NewNotifierClient returns a Notifier that sends through c (for tests, or a
// client made by the program itself).
func NewNotifierClient(c notify.Client, logger *slog.Logger) *Notifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{client: c, logger: logger}
}

func (n *Notifier) send(m notify.Message) error {
	if n == nil || n.client == nil {
		return nil
	}
	if err := n.client.Send(m); err != nil {
		return fmt.Errorf("worker: readiness: %w", err)
	}
	return nil
}

// Ready says the program is ready: {"ready":true}.
func (n *Notifier) Ready() error { return n.send(notify.Message{Ready: notify.Bool(true)}) }

// Status sends a human-readable status line: {"status":text}. It resets the
// controller's clock as any message does.
func (n *Notifier) Status(text string) error { return n.send(notify.Message{Status: text}) }

// Healthy is one heartbeat: {"healthy":true}.
func (n *Notifier) Healthy() error { return n.send(notify.Message{Healthy: true}) }

// Stopping says the program is shutting down: {"stopping":true}.
func (n *Notifier) Stopping() error { return n.send(notify.Message{Stopping: true}) }

// Close releases the notification channel (for NOTIFY_PIPE, the pipe).
// Later calls return an error wrapping notify.ErrClosed.
func (n *Notifier) Close() error {
	if n == nil || n.client == nil {
		return nil
	}
	return n.client.Close()
}

// Beat sends Healthy at once and then every interval, each time only if
// check(ctx) returns nil, until ctx ends; it then returns nil. A failing
// check sends nothing (a message of any kind would reset the controller's
// clock and hide the problem): it is logged at warn level, and beats resume
// when the check passes again. A check that hangs stops the beats, as it
// should. An interval that is not positive is an error; a failed Send is
// logged and does not stop Beat.
func (n *Notifier) Beat(ctx context.Context, interval time.Duration, check func(context.Context) error) error {
	if interval <= 0 {
		return fmt.Errorf("worker: Beat: interval must be positive, got %v", interval)
	}
	if check == nil {
		return fmt.Errorf("worker: Beat: check must not be nil")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := check(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			n.log().Warn("health check failed: not reporting healthy", "error", err)
		} else if err := n.Healthy(); err != nil {
			n.log().Warn("could not report healthy", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (n *Notifier) log() *slog.Logger {
	if n == nil || n.logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return n.logger
}
