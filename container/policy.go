package container

import "strconv"

// Action is a Policy's decision.
type Action int

const (
	// Continue: after a failed clock, leave the child running (its clock
	// starts again); after an exit, restart it if its Spec says so.
	Continue Action = iota
	// Kill: kill the child's process group with SIGKILL; it is restarted if
	// its Spec says so. After an exit, the same as Continue.
	Kill
	// StopContainer: stop the whole container gracefully; its Err then
	// returns ErrStoppedByPolicy.
	StopContainer
)

// String returns "continue", "kill" or "stop container".
func (a Action) String() string {
	switch a {
	case Continue:
		return "continue"
	case Kill:
		return "kill"
	case StopContainer:
		return "stop container"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Policy is told what happens to children and decides what to do about it.
// Its methods are called with the container's lock held: they must return
// quickly and must not call the container's methods.
type Policy interface {
	// ChildSpawn is called after a child process started.
	ChildSpawn(child ChildInfo)
	// ChildExit is called after a child process exited and was reaped.
	ChildExit(child ChildInfo, status ExitStatus) Action
	// StartupFailed is called when a child not yet ready has been silent
	// for its StartupTimeout.
	StartupFailed(child ChildInfo) Action
	// HealthCheckFailed is called when a ready child has been silent for
	// its HealthCheckTimeout.
	HealthCheckFailed(child ChildInfo) Action
}

// DefaultPolicy kills a child that fails its startup or health check, and
// otherwise lets the container restart children as their Spec says. Embed it
// to override only some hooks.
type DefaultPolicy struct{}

// ChildSpawn does nothing.
func (DefaultPolicy) ChildSpawn(ChildInfo) {}

// ChildExit returns Continue.
func (DefaultPolicy) ChildExit(ChildInfo, ExitStatus) Action { return Continue }

// StartupFailed returns Kill.
func (DefaultPolicy) StartupFailed(ChildInfo) Action { return Kill }

// HealthCheckFailed returns Kill.
func (DefaultPolicy) HealthCheckFailed(ChildInfo) Action { return Kill }
