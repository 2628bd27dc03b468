package probe

import (
	"errors"
	"time"
)

// Handle names a probe registered with a Scheduler. Handles are never
// reused by the Scheduler that gave them; the zero Handle is none.
type Handle uint64

// Status is a probe's state after its thresholds.
type Status uint8

// A probe is StatusUnknown until its first threshold is met: SuccessThreshold
// passes in a row make it StatusPassing, FailureThreshold failures in a row
// StatusFailing, and it stays so until the other threshold is met.
const (
	StatusUnknown Status = iota
	StatusPassing
	StatusFailing
)

// String returns "unknown", "passing" or "failing".
func (s Status) String() string {
	switch s {
	case StatusPassing:
		return "passing"
	case StatusFailing:
		return "failing"
	}
	return "unknown"
}

// Result is the outcome of one attempt of a probe.
type Result struct {
	// Handle is the probe's, as Scheduler.Add returned it.
	Handle Handle
	// Passed is this attempt's outcome.
	Passed bool
	// Consecutive counts the attempts in a row, this one included, with
	// this attempt's outcome: 3 after three failures in a row.
	Consecutive int
	// Status is the probe's state after this attempt.
	Status Status
	// Changed reports whether Status differs from the Status of the
	// previous result received of this probe (StatusUnknown before the
	// first).
	Changed bool
	// Err says why the attempt failed; nil when it passed. A timeout wraps
	// ErrTimeout.
	Err error
	// Time is when the attempt started, by the scheduler's clock.
	Time time.Time
	// Duration is how long the attempt took.
	Duration time.Duration
}

// ErrTimeout is wrapped by the error of an attempt that ran out of time.
var ErrTimeout = errors.New("probe timed out")

// ErrClosed is returned by Add once the Scheduler has stopped.
var ErrClosed = errors.New("probe: scheduler closed")
