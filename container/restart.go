package container

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// scheduleRestart starts inst again after its back-off delay for a process
// that lived lifetime (0 for one that could not be started).
func (c *Container) scheduleRestart(inst *instance, lifetime time.Duration) {
	if c.st.stopping || inst.removed || inst.stopped {
		return
	}
	if s := inst.svc.spec; s.StartLimitBurst > 0 {
		now := c.now()
		kept := inst.starts[:0]
		for _, t := range inst.starts {
			if now.Sub(t) < s.StartLimitInterval {
				kept = append(kept, t)
			}
		}
		inst.starts = kept
		if len(kept) >= s.StartLimitBurst {
			inst.failed = fmt.Sprintf("started %d times within %v (start_limit): not restarted until started again", len(kept), s.StartLimitInterval)
			c.logger.Error("child failed: start limit reached", "child", inst.name(), "starts", len(kept), "interval", s.StartLimitInterval)
			if !inst.everReady && inst.startErr == nil {
				c.failStart(inst, errors.New(inst.failed))
			}
			return
		}
	}
	d := inst.bo.next(lifetime, inst.svc.spec, c.opts.jitter)
	if lifetime == 0 && inst.cur == nil && inst.lastErr != "" {
		d = max(d, spawnFailedDelay(inst.svc.spec))
	}
	if d <= 0 {
		c.ensure(inst)
		return
	}
	inst.nextStart = c.now().Add(d)
	c.logger.Info("restarting after a back-off", "child", inst.name(), "in", d.Round(time.Millisecond))
	inst.restartAt = c.schedule(inst.restartAt, inst.nextStart, func(time.Time) {
		inst.nextStart = time.Time{}
		c.ensure(inst)
	})
}

// cancelRestart cancels inst's scheduled restart, if any.
func (c *Container) cancelRestart(inst *instance) {
	c.cancel(inst.restartAt)
	inst.nextStart = time.Time{}
}

// batch is a replacement in progress: new processes for some instances,
// each started beside the instance's running process (or as its process,
// when none runs). Without hold, each new process takes its instance's
// place as soon as it is ready (a rolling step); with hold (blue/green),
// none does until every one of them is ready. If one exits or cannot be
// started before that, the batch fails: its new processes not yet in place
// are stopped and the old ones keep running.
type batch struct {
	svc     *service
	hold    bool
	members []*instance
	ready   map[*proc]bool
	ended   bool
	reply   chan error  // gets the outcome, once
	commit  func()      // runs on success, after the swap (nil: nothing)
	abandon func(error) // runs on failure (nil: nothing)
}

// newBatch starts tracking a replacement of (some of) svc's instances.
func (c *Container) newBatch(svc *service, hold bool) *batch {
	b := &batch{svc: svc, hold: hold, ready: map[*proc]bool{}, reply: make(chan error, 1)}
	if c.st.batches == nil {
		c.st.batches = map[*batch]bool{}
	}
	c.st.batches[b] = true
	return b
}

// busy reports whether inst is part of a replacement in progress.
func (inst *instance) busy() bool {
	return inst.next != nil || inst.handover != nil || (inst.spawning != nil && inst.spawning.batch != nil) ||
		(inst.svc.batch != nil && !inst.svc.batch.ended)
}

// startMember starts b's new process for inst with spec; restart says
// whether it counts as a restart of the instance (a new configuration's
// process does not).
func (c *Container) startMember(b *batch, inst *instance, spec *Spec, restart bool) {
	b.members = append(b.members, inst)
	c.cancelRestart(inst)
	if j := inst.spawning; j != nil && j.role == roleCur && j.batch == nil && inst.cur == nil {
		// Its process is being started already: that start is the
		// replacement.
		j.batch = b
		return
	}
	if inst.cur != nil && spec.Port > 0 {
		// Its port cannot be held by two processes: the old one stops
		// first, then the new one starts.
		old := inst.cur
		inst.cur, inst.handover = nil, old
		old.then = func() {
			inst.handover = nil
			if b.ended || inst.removed || c.st.stopping {
				c.ensure(inst)
				return
			}
			c.spawn(inst, spec, roleCur, b, restart)
		}
		c.retire(old)
		return
	}
	if inst.cur != nil {
		c.spawn(inst, spec, roleNext, b, restart)
	} else {
		c.spawn(inst, spec, roleCur, b, restart && (inst.restarts > 0 || inst.lastExit != nil || inst.lastErr != ""))
	}
}

// batchMemberReady records that p, a new process of b, is ready.
func (c *Container) batchMemberReady(b *batch, p *proc) {
	if b.ended {
		return
	}
	b.ready[p] = true
	if !b.hold {
		c.swapIn(p)
		if len(b.ready) == len(b.members) {
			c.endBatch(b, nil)
		}
		return
	}
	if len(b.ready) < len(b.members) {
		return
	}
	for q := range b.ready {
		c.swapIn(q)
	}
	c.endBatch(b, nil)
}

// swapIn puts p, ready, in its instance's place; the process it replaces
// is stopped gracefully.
func (c *Container) swapIn(p *proc) {
	p.batch = nil
	inst := p.inst
	if p.role != roleNext {
		return
	}
	old := inst.cur
	inst.cur, inst.next, p.role = p, nil, roleCur
	if old != nil {
		c.retire(old)
	}
}

// retire stops p, which no instance holds any more.
func (c *Container) retire(p *proc) {
	p.role = roleOld
	c.st.retiring = append(c.st.retiring, p)
	c.stopProc(p)
}

// failBatch ends b with err: its new processes not yet in their instance's
// place are stopped.
func (c *Container) failBatch(b *batch, err error) {
	if b.ended {
		return
	}
	for _, inst := range b.members {
		if p := inst.next; p != nil && p.batch == b {
			inst.next = nil
			p.batch = nil
			c.retire(p)
		}
		if p := inst.cur; p != nil && p.batch == b {
			p.batch = nil // a process started where none ran stays
		}
	}
	if b.abandon != nil {
		b.abandon(err)
	}
	c.endBatch(b, err)
}

func (c *Container) endBatch(b *batch, err error) {
	b.ended = true
	delete(c.st.batches, b)
	if b.svc.batch == b {
		b.svc.batch = nil
	}
	if err == nil && b.commit != nil {
		b.commit()
	}
	b.reply <- err
}

// RestartChildren restarts the instances of service (index -1: all, one
// after the other; otherwise that one). For each, a replacement is started
// beside the running process; once the replacement is ready the old process
// is stopped gracefully, so the service never loses its last ready worker.
// An instance with no running process is simply started. If a replacement
// exits or cannot be started before it is ready, the old process keeps
// running and the error wraps ErrReplacementFailed; if ctx ends, the
// replacement being waited for is stopped.
func (c *Container) RestartChildren(ctx context.Context, svcName string, index int) error {
	if !c.isStarted() {
		return ErrStopped
	}
	var (
		targets []*instance
		err     error
	)
	ok := c.do(func() {
		svc := c.service(svcName)
		switch {
		case svc == nil:
			err = fmt.Errorf("restart %q: %w", svcName, ErrUnknownService)
		case index == -1:
			targets = svc.instances
		case index < 0 || index >= len(svc.instances):
			err = fmt.Errorf("restart %s.%d: service has %d instances: %w", svcName, index, len(svc.instances), ErrUnknownInstance)
		default:
			targets = svc.instances[index : index+1]
		}
	})
	if !ok {
		return ErrStopped
	}
	if err != nil {
		return err
	}
	for _, inst := range targets {
		if err := c.replaceOne(ctx, inst, true); err != nil {
			return fmt.Errorf("restart %s.%d: %w", svcName, inst.index, err)
		}
	}
	return nil
}

// replaceOne replaces inst's process with one of its service's spec and
// waits for the outcome; restart says whether it counts as a restart.
func (c *Container) replaceOne(ctx context.Context, inst *instance, restart bool) error {
	var (
		b   *batch
		err error
	)
	ok := c.do(func() {
		switch {
		case c.st.stopping:
			err = ErrStopped
		case inst.removed:
			err = ErrUnknownInstance
		case inst.busy():
			err = ErrBusy
		default:
			b = c.newBatch(inst.svc, false)
			c.startMember(b, inst, &inst.svc.spec, restart)
		}
	})
	if !ok {
		return ErrStopped
	}
	if err != nil {
		return err
	}
	return c.await(ctx, b)
}

// await waits for b's outcome; when ctx ends first, b is failed (its new
// processes stopped) and ctx's error returned.
func (c *Container) await(ctx context.Context, b *batch) error {
	select {
	case err := <-b.reply:
		return err
	case <-ctx.Done():
		c.do(func() { c.failBatch(b, ctx.Err()) })
		return ctx.Err()
	}
}
