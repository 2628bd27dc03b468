// Package control is the controller's side of the supervisor's socket:
// the one wire description of a child ([Child]), and the operations a
// controller serves through the supervisor ([Handlers]): "children" (what
// `vigil status` shows) and "restart_children" (`vigil restart`).
//
// A Go program that embeds a container.Controller and registers with a
// supervisor (role "controller") serves the same operations by giving
// Handlers to its worker connection, as `vigil run` does.
//
// # The "logs" operation
//
// Served by the controller, reached with the supervisor's forward. Its
// parameters, all optional:
//
//	service   string   one service ("" or absent: every service)
//	instance  integer  one instance of it (absent: every instance)
//	stream    string   "stdout" or "stderr" (absent: both)
//	n         integer  only the last n lines (absent or 0: every line kept)
//	since     string   only lines read at or after this RFC 3339 time
//	previous  boolean  the lines of each instance's previous process
//	                   instead of its current one (why did it crash?)
//	after     integer  only lines after this cursor (a final reply's
//	                   "cursor"): how a follow resumes
//	follow    boolean  after the kept lines, stream the new ones as they
//	                   come, across restarts, for up to follow_for seconds
//	follow_for number  how long a follow call lasts, in seconds (default
//	                   and most: 30)
//
// The lines come in intermediate replies, oldest first, interleaved across
// instances in the order they were read, up to 500 lines a reply:
//
//	{"id":N,"lines":[{"time":"2025-01-02T03:04:05.123456Z","service":"web",
//	  "instance":1,"pid":4242,"stream":"stderr","line":"panic: ..."}, ...]}
//
// A follower that fell behind gets {"id":N,"lost":COUNT} where the lines
// were lost: the controller never slows a child down for a follower. The
// final reply gives the cursor to resume from:
//
//	{"id":N,"finished":true,"cursor":12345}
//
// A follow ends on its own after follow_for: the protocol has no way to
// cancel a call, and a forwarded call's operator may be gone, so the
// caller calls again with "after" set to the cursor to go on; no line is
// lost or repeated between two calls while the lines in between are still
// kept. Bad parameters fail the call with class "ArgumentError"; previous
// and follow together fail (the previous process has exited).
package control

import (
	"time"

	"github.com/vigild/vigil/container"
)

// Child is one child of the controller, as the "children" operation sends
// it. Pointer fields are null when there is nothing to say.
type Child struct {
	// Service is the service's name.
	Service string `json:"service"`
	// Instance is the 0-based instance number within the service.
	Instance int `json:"instance"`
	// PID is the process id, 0 when no process runs.
	PID int `json:"pid"`
	// State is "starting", "ready", "unhealthy", "backing off", "stopping"
	// or "exited".
	State string `json:"state"`
	// Restarts counts the processes started for this instance after its
	// first one.
	Restarts int `json:"restarts"`
	// LastExit is how the instance's previous process ended ("exit 3",
	// "signal killed"), null if none.
	LastExit *string `json:"last_exit"`
	// LastError is the last error starting the instance, if any.
	LastError string `json:"last_error,omitempty"`
	// Status is the last status text the process sent, if any.
	Status string `json:"status,omitempty"`
	// StartedAt is when the current process started, null without one.
	StartedAt *time.Time `json:"started_at"`
	// Uptime is how long the current process has run, in seconds; null
	// without one.
	Uptime *float64 `json:"uptime"`
	// NextRestart is when a backing-off instance starts again, null if
	// none is scheduled.
	NextRestart *time.Time `json:"next_restart"`
	// DroppedLines counts the process's output lines that a destination
	// dropped because it fell behind.
	DroppedLines uint64 `json:"dropped_lines,omitempty"`
}

// FromInfo describes a container's child on the wire.
func FromInfo(c container.ChildInfo) Child {
	j := Child{
		Service: c.Service, Instance: c.Instance, PID: c.PID, State: c.State.String(),
		Restarts: c.Restarts, LastError: c.LastError, Status: c.Status, DroppedLines: c.DroppedLines,
	}
	if c.PID != 0 {
		up := c.Uptime.Seconds()
		j.Uptime = &up
	}
	if c.LastExit != nil {
		s := c.LastExit.String()
		j.LastExit = &s
	}
	if !c.Started.IsZero() {
		t := c.Started
		j.StartedAt = &t
	}
	if !c.NextRestart.IsZero() {
		t := c.NextRestart
		j.NextRestart = &t
	}
	return j
}

// Children is the "children" operation's reply.
type Children struct {
	// Children are every child, by service and instance.
	Children []Child `json:"children"`
	// Statistics are each configured service's, by name.
	Statistics map[string]container.Statistics `json:"statistics"`
	// Tracking says how descendants of the children are tracked: "cgroup
	// PATH", "process group and descent", or "" when the controller does
	// not say.
	Tracking string `json:"tracking,omitempty"`
}
