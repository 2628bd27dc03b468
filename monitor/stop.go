package monitor

import (
	"context"
	"time"
)

// stopFunc stops a process: SIGINT, then SIGKILL if it is still there after
// grace. It returns how the process ended.
type stopFunc func(ctx context.Context, pid int, grace time.Duration) (stopOutcome, error)

// stopOutcome is how a stopped process ended.
type stopOutcome int

const (
	outcomeGone        stopOutcome = iota // already gone before the signal
	outcomeInterrupted                    // exited after SIGINT
	outcomeKilled                         // needed SIGKILL
)

func (o stopOutcome) String() string {
	switch o {
	case outcomeGone:
		return "already gone"
	case outcomeInterrupted:
		return "exited after SIGINT"
	case outcomeKilled:
		return "killed with SIGKILL"
	}
	return "unknown"
}

// killWait bounds the wait for a process to vanish after SIGKILL.
const killWait = 5 * time.Second
