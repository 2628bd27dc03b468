package container

import (
	"fmt"
	"time"

	"github.com/vigild/vigil/logs"
	"github.com/vigild/vigil/probe"
)

// service is one service's instances, owned by the loop.
type service struct {
	spec      Spec // the spec new processes start with
	stats     *serviceStats
	instances []*instance
	batch     *batch // a replacement of the whole service in progress
}

// instance is one slot of a service: at most one current process, at most
// one replacement being started beside it, and never a process that the
// loop does not know.
type instance struct {
	svc      *service
	index    int
	cur      *proc       // the instance's process
	next     *proc       // its replacement, not yet ready
	spawning *spawnJob   // a spawn in flight for cur or next
	handover *proc       // its process being stopped before its replacement starts (a port)
	removed  bool        // scaled away or its service removed: never started again
	stopped  bool        // stopped by an operator: not started until StartService
	failed   string      // why it failed for good (the start limit), "" if it has not
	starts   []time.Time // its recent starts, for the start limit

	restarts  int
	bo        backoff
	restartAt *alarm    // a scheduled restart (back-off)
	nextStart time.Time // when restartAt fires
	lastExit  *ExitStatus
	lastErr   string
	everReady bool
	startErr  error // why it failed before it was ever ready
}

func (inst *instance) name() string { return fmt.Sprintf("%s.%d", inst.svc.spec.Name, inst.index) }

// role says what a process is to its instance.
type role int

const (
	roleCur  role = iota // the instance's process
	roleNext             // a replacement, not yet ready
	roleOld              // being stopped, held by no instance
)

// proc is one process. It is created by the loop when its spawn
// succeeded, and never outlives its reaping in the loop's state.
type proc struct {
	inst    *instance
	spec    *Spec // the spec it was started with
	seq     uint64
	role    role
	batch   *batch // the replacement it is part of, until it is ready
	pid     int
	pidfd   int           // closed once reaped
	capture *logs.Capture // its stdout and stderr

	started      time.Time
	lastActivity time.Time
	ready        bool
	everReady    bool
	unhealthy    bool
	status       string
	killed       string // why the container killed it, if it did
	reaped       bool
	exit         ExitStatus

	then      func()       // run once it has been reaped (a handover)
	probe     probe.Handle // its probe, when probeKind is not 0
	probeKind probeKind
	clock     *alarm // its readiness clock
	stopping  bool
	stopStep  int    // escalation steps taken
	stopAt    *alarm // the next escalation step
}

func (p *proc) name() string { return fmt.Sprintf("%s.%d", p.spec.Name, p.inst.index) }

func (c *Container) newService(s Spec) *service {
	svc := &service{spec: s, stats: c.stats.get(s.Name)}
	for i := range s.Count {
		svc.instances = append(svc.instances, &instance{svc: svc, index: i, stopped: s.Stopped})
	}
	return svc
}

// service returns the service called name, or nil.
func (c *Container) service(name string) *service {
	for _, svc := range c.st.services {
		if svc.spec.Name == name {
			return svc
		}
	}
	return nil
}

// info describes inst with its process p (nil: the instance itself).
func (c *Container) info(inst *instance, p *proc, now time.Time) ChildInfo {
	ci := ChildInfo{
		Service: inst.svc.spec.Name, Instance: inst.index, Restarts: inst.restarts,
		LastExit: inst.lastExit, LastError: inst.lastErr,
	}
	if p == nil {
		switch {
		case inst.spawning != nil:
			ci.State = StateStarting
		case inst.stopped:
			ci.State = StateStopped
		case inst.failed != "":
			ci.State, ci.LastError = StateFailed, inst.failed
		case inst.restartAt != nil && inst.restartAt.index >= 0:
			ci.State, ci.NextRestart = StateBackingOff, inst.nextStart
		default:
			ci.State = StateExited
		}
		return ci
	}
	ci.Service = p.spec.Name
	ci.PID, ci.Started, ci.Uptime, ci.Status = p.pid, p.started, now.Sub(p.started), p.status
	if p.capture != nil {
		ci.DroppedLines = p.capture.Stats().Dropped()
	}
	switch {
	case p.stopping:
		ci.State = StateStopping
	case p.unhealthy:
		ci.State = StateUnhealthy
	case p.ready:
		ci.State = StateReady
	default:
		ci.State = StateStarting
	}
	return ci
}

// children describes every child (see Container.Children).
func (c *Container) children(now time.Time) []ChildInfo {
	var out []ChildInfo
	for _, svc := range c.st.services {
		for _, inst := range svc.instances {
			out = append(out, c.info(inst, inst.cur, now))
			if inst.next != nil {
				out = append(out, c.info(inst, inst.next, now))
			}
		}
		for _, p := range c.st.retiring {
			if p.inst.svc == svc {
				out = append(out, c.info(p.inst, p, now))
			}
		}
	}
	for _, p := range c.st.retiring {
		if c.service(p.spec.Name) != p.inst.svc {
			out = append(out, c.info(p.inst, p, now))
		}
	}
	return out
}

// readyState is the condition of WaitReady for the services named (nil:
// all): done once every instance has been ready; an error once one that
// never was has failed.
func (c *Container) readyState(names []string) (bool, error) {
	all := true
	for _, svc := range c.st.services {
		if names != nil && !contains(names, svc.spec.Name) {
			continue
		}
		for _, inst := range svc.instances {
			if inst.startErr != nil {
				return true, fmt.Errorf("%w: %w", ErrNotReady, inst.startErr)
			}
			all = all && inst.everReady
		}
	}
	switch {
	case all:
		return true, nil
	case c.st.stopping:
		return true, ErrStopped
	}
	return false, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
