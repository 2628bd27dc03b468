package container

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
)

// onExit reaps p, which has exited, and decides what follows: a restart of
// its instance, the failure of the replacement it was, or nothing.
func (c *Container) onExit(p *proc) {
	now := c.now()
	// The leader is a zombie until reaped, so its process group id cannot
	// have been reused: kill the rest of its group first.
	_ = c.sys.signal(p.pid, syscall.SIGKILL)
	status, err := c.sys.reap(p.pid)
	if err != nil {
		c.logger.Error("reaping child failed", "child", p.name(), "pid", p.pid, "error", err)
	}
	p.reaped, p.exit = true, status
	c.st.live--
	closeFD(p.pidfd)
	c.wg.Add(1)
	go c.endCapture(p)
	c.cancel(p.clock)
	c.cancel(p.stopAt)
	c.stopProbe(p)
	c.afterReap(p)

	inst := p.inst
	info := c.info(inst, p, now)
	failed := !p.stopping && (!status.Success() || p.killed != "")
	level := slog.LevelInfo
	if failed {
		level = slog.LevelWarn
	}
	attrs := []any{"child", p.name(), "pid", p.pid, "status", status.String()}
	if p.killed != "" {
		attrs = append(attrs, "killed", p.killed) // why the container killed it
	}
	c.logger.Log(context.Background(), level, "child exited", attrs...)
	action := c.policy.ChildExit(info, status)

	reason := status.String()
	if p.killed != "" {
		reason = p.killed
	}
	switch p.role {
	case roleNext:
		inst.next = nil
		if p.batch != nil {
			c.failBatch(p.batch, fmt.Errorf("%s (pid %d) exited before it was ready: %s: %w", p.name(), p.pid, reason, ErrReplacementFailed))
		}
	case roleCur:
		inst.cur = nil
		inst.lastExit = &status
		if p.batch != nil {
			c.failBatch(p.batch, fmt.Errorf("%s (pid %d) exited before it was ready: %s: %w", p.name(), p.pid, reason, ErrReplacementFailed))
		}
		if !inst.everReady && inst.startErr == nil {
			c.failStart(inst, fmt.Errorf("%s (pid %d) exited before it was ready: %s", p.name(), p.pid, reason))
		}
		switch {
		case inst.next != nil:
			// Its replacement, still starting, takes its place.
			inst.cur, inst.next = inst.next, nil
			inst.cur.role = roleCur
		case inst.removed || c.st.stopping || action == StopContainer:
		case p.spec.Restart:
			c.scheduleRestart(inst, now.Sub(p.started))
		}
	default:
		for i, q := range c.st.retiring {
			if q == p {
				c.st.retiring = append(c.st.retiring[:i], c.st.retiring[i+1:]...)
				break
			}
		}
		if p.then != nil {
			p.then()
		}
	}
	// The statistics last: a restart is already on its way.
	if failed {
		inst.svc.stats.failure(now)
	}
	inst.svc.stats.exited(inst.index, p.stopping, p.killed, status)
	if action == StopContainer {
		c.stopByPolicy()
	}
}

// afterReap is called once p has been reaped; descendants of p that left
// its process group are dealt with here (see the subreaper).
func (c *Container) afterReap(p *proc) {
	if c.opts.reaper != nil {
		c.opts.reaper.reaped(p.pid, p.seq, p.stopping)
	}
}
