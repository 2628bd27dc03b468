package container

import (
	"syscall"
	"time"
)

// stopProc stops p gracefully: see escalate. Stopping twice is stopping
// once.
func (c *Container) stopProc(p *proc) {
	if p.stopping || p.reaped {
		return
	}
	p.stopping = true
	c.cancel(p.clock)
	c.stopProbe(p)
	c.escalate(p, c.now())
}

// escalate takes p's next stop step: the stop signal (Spec.StopSignal,
// SIGINT by default) to its
// process group, then, if it is still there after Spec.GracefulStop,
// SIGTERM, then after GracefulStop again SIGKILL. A GracefulStop below zero,
// or a container being killed, goes straight to SIGKILL.
func (c *Container) escalate(p *proc, now time.Time) {
	if p.reaped {
		return
	}
	grace := p.spec.GracefulStop
	if grace <= 0 || c.st.killing {
		p.stopStep = 2
	}
	first := p.spec.StopSignal
	if first == 0 {
		first = syscall.SIGINT
	}
	switch p.stopStep {
	case 0:
		c.signal(p, first)
	case 1:
		c.logger.Warn("child did not stop in time: SIGTERM", "child", p.name(), "pid", p.pid, "after", grace, "signal", first.String())
		c.signal(p, syscall.SIGTERM)
	default:
		if p.stopStep == 2 && grace > 0 && !c.st.killing {
			c.logger.Warn("child did not stop in time: SIGKILL", "child", p.name(), "pid", p.pid, "after", grace, "signal", "SIGTERM")
		}
		c.signal(p, syscall.SIGKILL)
		c.cancel(p.stopAt)
		p.stopStep++
		return
	}
	p.stopStep++
	p.stopAt = c.schedule(p.stopAt, now.Add(grace), func(now time.Time) { c.escalate(p, now) })
}

// beginStop stops the container: pending spawns are dropped, replacements
// in progress fail, scheduled restarts are cancelled; advanceStop then
// stops the processes, persistent services last.
func (c *Container) beginStop() {
	if c.st.stopping {
		return
	}
	c.st.stopping = true
	for _, j := range c.st.pending {
		if j.inst.spawning == j {
			j.inst.spawning = nil
		}
		j.release(false)
	}
	clear(c.st.pending)
	c.st.pending = nil
	for b := range c.st.batches {
		c.failBatch(b, ErrStopped)
	}
	for _, svc := range c.st.services {
		for _, inst := range svc.instances {
			c.cancelRestart(inst)
		}
	}
}

// stopByPolicy stops the container because its policy said so.
func (c *Container) stopByPolicy() {
	if c.st.stopping {
		return
	}
	c.errMu.Lock()
	c.err = ErrStoppedByPolicy
	c.errMu.Unlock()
	c.logger.Warn("policy stops the container")
	c.beginStop()
}

// killAll skips what is left of every graceful stop: SIGKILL now, and for
// any process still to come.
func (c *Container) killAll() {
	c.beginStop()
	c.st.killing = true
	c.eachProc(func(p *proc) {
		p.stopping = true
		p.stopStep = 2
		c.escalate(p, c.now())
	})
}

// advanceStop, while stopping, stops every process of the services that
// are not persistent, then, once none of them is left, the persistent
// ones; once nothing runs and no spawn is in flight, the loop may end.
func (c *Container) advanceStop() {
	others := false
	c.eachProc(func(p *proc) {
		if !p.spec.Persistent {
			others = true
			c.stopProc(p)
		}
	})
	for j := range c.st.inFlight {
		if !j.spec.Persistent {
			others = true
		}
	}
	if !others {
		c.eachProc(c.stopProc)
	}
	if c.st.live == 0 && len(c.st.inFlight) == 0 {
		c.st.stopped = true
	}
}

// eachProc calls f for every process not yet reaped.
func (c *Container) eachProc(f func(*proc)) {
	for _, svc := range c.st.services {
		for _, inst := range svc.instances {
			for _, p := range []*proc{inst.cur, inst.next} {
				if p != nil && !p.reaped {
					f(p)
				}
			}
		}
	}
	for _, p := range c.st.retiring {
		if !p.reaped {
			f(p)
		}
	}
}
