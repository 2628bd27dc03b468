package container

import (
	"fmt"
	"time"
)

// State is where a child stands.
type State int

const (
	// StateStarting: running, not (or no longer) ready.
	StateStarting State = iota
	// StateReady: running and ready.
	StateReady
	// StateUnhealthy: failed its health check and was left running by the
	// policy, until its next message.
	StateUnhealthy
	// StateBackingOff: its process exited; a restart is scheduled at
	// ChildInfo.NextRestart.
	StateBackingOff
	// StateStopping: being stopped (by Stop, or replaced by a restart).
	StateStopping
	// StateExited: its process exited and will not be restarted.
	StateExited
	// StateStopped: stopped by an operator (StopService), or never started
	// (Spec.Stopped); StartService starts it.
	StateStopped
	// StateFailed: it failed to start too often (Spec.StartLimitBurst
	// within StartLimitInterval) and is not retried until StartService.
	StateFailed
)

var stateNames = [...]string{"starting", "ready", "unhealthy", "backing off", "stopping", "exited", "stopped", "failed"}

// String returns "starting", "ready", "unhealthy", "backing off",
// "stopping", "exited", "stopped" or "failed".
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText encodes the state as its String.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ChildInfo describes one child (one process of one instance of a service)
// for operators and policies. An instance being replaced by RestartChildren
// appears twice: its replacement, and its old process.
type ChildInfo struct {
	// Service is the service's name.
	Service string `json:"service"`
	// Instance is the 0-based instance number within the service.
	Instance int `json:"instance"`
	// PID is the process id, 0 when no process runs (backing off, exited).
	PID int `json:"pid,omitempty"`
	// State is where the child stands.
	State State `json:"state"`
	// Restarts counts the processes started for this instance after its
	// first one.
	Restarts int `json:"restarts"`
	// LastExit is how this instance's previous process ended, nil if none.
	LastExit *ExitStatus `json:"last_exit,omitempty"`
	// LastError is the last error starting this instance, if any.
	LastError string `json:"last_error,omitempty"`
	// Started is when the current process started (zero without one).
	Started time.Time `json:"started,omitzero"`
	// Uptime is how long the current process has run (nanoseconds in JSON).
	Uptime time.Duration `json:"uptime"`
	// NextRestart is when the instance will be restarted (backing off only).
	NextRestart time.Time `json:"next_restart,omitzero"`
	// Status is the last status message the process sent.
	Status string `json:"status,omitempty"`
	// DroppedLines counts the process's output lines that a destination
	// (console, file, journal) dropped because it fell behind.
	DroppedLines uint64 `json:"dropped_lines,omitempty"`
}

// Name is "service.instance", the prefix of the child's output.
func (c ChildInfo) Name() string { return fmt.Sprintf("%s.%d", c.Service, c.Instance) }
