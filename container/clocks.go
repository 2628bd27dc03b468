package container

import (
	"syscall"
	"time"

	"github.com/vigild/vigil/notify"
)

// onMessage applies a readiness message: every message resets the child's
// clock.
func (c *Container) onMessage(p *proc, m notify.Message) {
	if p.reaped {
		return
	}
	p.lastActivity = c.now()
	if m.Status != "" {
		p.status = m.Status
	}
	if m.Healthy {
		p.unhealthy = false
	}
	if m.Ready != nil {
		if *m.Ready {
			c.markReady(p)
		} else {
			p.ready = false
		}
		c.armClock(p, p.lastActivity) // the clock that applies changed
	}
}

// markReady marks p ready; a ready replacement takes its instance's place
// (or waits for the rest of its batch), and the old process is stopped.
func (c *Container) markReady(p *proc) {
	if !p.everReady {
		c.logger.Info("child ready", "child", p.name(), "pid", p.pid, "after", c.now().Sub(p.started).Round(time.Millisecond))
		p.inst.svc.stats.ready(p.inst.index, p.started, c.now())
	}
	p.ready, p.everReady, p.unhealthy = true, true, false
	p.inst.everReady = true
	if p.probeKind == 0 {
		c.startProbe(p, healthProbe)
	}
	if b := p.batch; b != nil {
		c.batchMemberReady(b, p)
	}
}

// timeout returns the clock that applies to p now and what it is called.
func (p *proc) timeout() (time.Duration, string) {
	if p.ready {
		return p.spec.HealthCheckTimeout, "health check timeout"
	}
	return p.spec.StartupTimeout, "startup timeout"
}

// deadline is when p's clock runs out, timeout after its last activity:
// just past it, as a clock runs out once it is exceeded.
func (p *proc) deadline(timeout time.Duration) time.Time {
	return p.lastActivity.Add(timeout + time.Millisecond)
}

// armClock schedules p's clock check at its deadline (the last activity
// plus the timeout that applies), or cancels it when no timeout applies.
func (c *Container) armClock(p *proc, now time.Time) {
	timeout, _ := p.timeout()
	if timeout <= 0 || p.stopping || p.killed != "" || p.reaped {
		c.cancel(p.clock)
		return
	}
	at := p.deadline(timeout)
	p.clock = c.schedule(p.clock, at, func(now time.Time) { c.checkClock(p, now) })
}

// checkClock applies p's clock at now: silent for longer than its timeout,
// it has failed its startup or health check and the policy decides.
func (c *Container) checkClock(p *proc, now time.Time) {
	timeout, what := p.timeout()
	if timeout <= 0 || p.stopping || p.killed != "" || p.reaped {
		return
	}
	if now.Sub(p.lastActivity) <= timeout {
		// Re-armed by activity since: check again at the new deadline, but
		// not sooner than the check interval.
		at := p.deadline(timeout)
		if soonest := now.Add(c.interval); at.Before(soonest) {
			at = soonest
		}
		c.st.rearms++ // nothing to show for it
		p.clock = c.schedule(p.clock, at, func(now time.Time) { c.checkClock(p, now) })
		return
	}
	if late := now.Sub(p.deadline(timeout)); late > c.stallAfter() {
		// The clock ran out long after its deadline: this process did not
		// run meanwhile (paused, frozen, suspended, starved), and most
		// likely neither did the children. What they did is unknown: every
		// child's clock starts again.
		c.restartClocks(now, late)
		return
	}
	p.lastActivity = now
	info := c.info(p.inst, p, now)
	var action Action
	if p.ready {
		p.unhealthy = true
		action = c.policy.HealthCheckFailed(info)
	} else {
		action = c.policy.StartupFailed(info)
	}
	c.logger.Warn("child failed its "+what, "child", p.name(), "pid", p.pid, "timeout", timeout, "action", action)
	switch action {
	case Kill:
		p.killed = what
		c.signal(p, syscall.SIGKILL)
	case StopContainer:
		p.killed = what
		c.stopByPolicy()
	default:
		c.armClock(p, now)
	}
}

// stallAfter is how late a clock may run out before the container takes
// it that it was not running (see restartClocks): a clock checked again
// after activity is late by up to the check interval by design, a busy
// loop by milliseconds more; a paused one by the pause.
func (c *Container) stallAfter() time.Duration { return c.interval + time.Second }

// restartClocks starts every child's clock again at now: the container
// was not running for late at least (a clock ran out that much after its
// deadline), and the children it could not hear meanwhile are not to be
// held to it.
func (c *Container) restartClocks(now time.Time, late time.Duration) {
	n := 0
	c.eachProc(func(p *proc) {
		if timeout, _ := p.timeout(); timeout > 0 && !p.stopping && p.killed == "" {
			p.lastActivity = now
			c.armClock(p, now)
			n++
		}
	})
	c.logger.Warn("vigil was not running (paused, frozen, suspended or starved): the children's clocks start again", "late", late.Round(time.Millisecond), "children", n)
}
