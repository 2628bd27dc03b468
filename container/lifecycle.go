package container

import (
	"context"
	"fmt"
	"slices"
)

// instances resolves a service and an instance (-1: all of them) on the
// loop.
func (c *Container) instances(name string, index int) ([]*instance, error) {
	svc := c.service(name)
	switch {
	case svc == nil:
		return nil, fmt.Errorf("%q: %w", name, ErrUnknownService)
	case index == -1:
		return svc.instances, nil
	case index < 0 || index >= len(svc.instances):
		return nil, fmt.Errorf("%s.%d: service has %d instances: %w", name, index, len(svc.instances), ErrUnknownInstance)
	}
	return svc.instances[index : index+1], nil
}

// StopService stops a service's instances (index -1: all) gracefully and
// keeps them stopped (state "stopped") until StartService; it returns once
// their processes have been reaped, or ctx ends.
func (c *Container) StopService(ctx context.Context, name string, index int) error {
	if !c.isStarted() {
		return ErrStopped
	}
	var (
		targets []*instance
		err     error
	)
	ok := c.do(func() {
		if targets, err = c.instances(name, index); err != nil {
			return
		}
		for _, inst := range targets {
			if b := inst.svc.batch; b != nil {
				c.failBatch(b, fmt.Errorf("%s stopped: %w", name, ErrStopped))
			}
			inst.stopped = true
			c.cancelRestart(inst)
			for _, p := range []*proc{inst.cur, inst.next} {
				if p != nil {
					if p.batch != nil {
						c.failBatch(p.batch, fmt.Errorf("%s stopped: %w", inst.name(), ErrStopped))
					}
					c.retire(p)
				}
			}
			inst.cur, inst.next = nil, nil
		}
	})
	if !ok {
		return ErrStopped
	}
	if err != nil {
		return fmt.Errorf("stop %w", err)
	}
	return c.wait(ctx, func() (bool, error) {
		for _, p := range c.st.retiring {
			if !p.reaped && slices.Contains(targets, p.inst) {
				return false, nil
			}
		}
		for _, inst := range targets {
			if inst.spawning != nil {
				return false, nil
			}
		}
		return true, nil
	})
}

// StartService starts a service's instances (index -1: all) that were
// stopped or failed (their back-off and start limit forgotten), and waits
// until each is ready; an instance that fails before it is ready makes it
// return the error (it keeps being restarted as its Spec says).
func (c *Container) StartService(ctx context.Context, name string, index int) error {
	if !c.isStarted() {
		return ErrStopped
	}
	var (
		targets []*instance
		err     error
	)
	ok := c.do(func() {
		if targets, err = c.instances(name, index); err != nil {
			return
		}
		for _, inst := range targets {
			if inst.stopped || inst.failed != "" {
				inst.stopped, inst.failed, inst.starts, inst.startErr = false, "", nil, nil
				inst.everReady = inst.cur != nil && inst.cur.ready
				inst.bo = backoff{}
				c.cancelRestart(inst)
			}
			c.ensure(inst)
		}
	})
	if !ok {
		return ErrStopped
	}
	if err != nil {
		return fmt.Errorf("start %w", err)
	}
	return c.wait(ctx, func() (bool, error) {
		for _, inst := range targets {
			if inst.startErr != nil {
				return true, fmt.Errorf("start %s: %w: %w", inst.name(), ErrNotReady, inst.startErr)
			}
			if c.st.stopping {
				return true, ErrStopped
			}
			if inst.cur == nil || !inst.cur.ready {
				return false, nil
			}
		}
		return true, nil
	})
}
