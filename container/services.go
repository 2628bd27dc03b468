package container

import (
	"context"
	"fmt"
)

// AddService starts a new service and waits until every instance of it has
// been ready. If one fails before it was ever ready (see WaitReady), or ctx
// ends, the service is removed again (its processes stopped) and the error
// returned.
func (c *Container) AddService(ctx context.Context, spec Spec) error {
	return c.AddServices(ctx, []Spec{spec})
}

// AddServices starts several new services at once and waits until all are
// ready; on failure they are all removed again.
func (c *Container) AddServices(ctx context.Context, specs []Spec) error {
	names, err := c.addServices(specs)
	if err != nil {
		return err
	}
	err = c.wait(ctx, func() (bool, error) { return c.readyState(names) })
	if err != nil {
		for _, n := range names {
			_ = c.RemoveService(context.WithoutCancel(ctx), n)
		}
		return err
	}
	return nil
}

// addServices adds services and starts their instances (those not
// Stopped), without waiting; it returns their names.
func (c *Container) addServices(specs []Spec) ([]string, error) {
	if err := validateSpecs(specs); err != nil {
		return nil, err
	}
	if !c.isStarted() {
		return nil, ErrStopped
	}
	names := make([]string, len(specs))
	var err error
	ok := c.do(func() {
		if c.st.stopping {
			err = ErrStopped
			return
		}
		for i, s := range specs {
			names[i] = s.Name
			if c.service(s.Name) != nil {
				err = fmt.Errorf("service %q: %w", s.Name, ErrServiceExists)
				return
			}
		}
		for _, s := range specs {
			svc := c.newService(s.withDefaults())
			c.st.services = append(c.st.services, svc)
			for _, inst := range svc.instances {
				c.ensure(inst)
			}
		}
	})
	if !ok {
		return nil, ErrStopped
	}
	return names, err
}

// ServiceOutcome is where a service stands after its start: ready, or the
// error of its first instance that failed before it was ever ready.
type ServiceOutcome struct {
	// Service is the service's name.
	Service string
	// Err is nil once every instance has been ready (or is stopped);
	// otherwise why one failed before it was ever ready. A failed service
	// keeps being restarted as its Spec says.
	Err error
}

// StartServices adds services and waits until each one has either become
// ready or failed (see ServiceOutcome), whichever comes first for each:
// one that never becomes ready (and has no startup timeout) holds it until
// ctx ends. Nothing is removed on failure.
func (c *Container) StartServices(ctx context.Context, specs []Spec) ([]ServiceOutcome, error) {
	names, err := c.addServices(specs)
	if err != nil {
		return nil, err
	}
	return c.waitServices(ctx, names)
}

// failStart records why inst failed before it was ever ready.
func (c *Container) failStart(inst *instance, err error) {
	inst.startErr = err
	c.st.startFails++
}

// waitServices waits until each of the services named has either become
// ready or failed (see StartServices).
func (c *Container) waitServices(ctx context.Context, names []string) ([]ServiceOutcome, error) {
	var out []ServiceOutcome
	// The condition runs after every event, so it looks at as few
	// instances as it can: 1,000 instances starting would cost a million
	// looks. The instances before a service's cursor have been ready,
	// which they stay for this wait (an instance that was ready never
	// fails its start): they are not looked at again. The others are
	// looked at up to the first still starting, where the wait goes on,
	// unless an instance may have failed its start since the last look
	// (startFails changed, or the failure a look found is gone): then
	// every one is, for the first failure, which is kept.
	type look struct {
		ready  int // the cursor
		failed int // the instance whose failure was found, or -1
	}
	looks := map[*service]*look{}
	fails, first := uint64(0), true
	err := c.wait(ctx, func() (bool, error) {
		out = out[:0]
		changed := first || c.st.startFails != fails
		fails, first = c.st.startFails, false
		for _, name := range names {
			svc := c.service(name)
			if svc == nil {
				continue
			}
			l := looks[svc]
			if l == nil {
				l = &look{failed: -1}
				looks[svc] = l
			}
			o := ServiceOutcome{Service: name}
			all := changed
			if l.failed >= 0 {
				if l.failed < len(svc.instances) && svc.instances[l.failed].startErr != nil {
					o.Err = svc.instances[l.failed].startErr
				} else {
					l.failed, all = -1, true // started again
				}
			}
			from := min(l.ready, len(svc.instances))
			for from < len(svc.instances) && svc.instances[from].everReady && svc.instances[from].startErr == nil {
				from++
			}
			l.ready = from
			settled := true
			for i := from; i < len(svc.instances); i++ {
				inst := svc.instances[i]
				switch {
				case inst.startErr != nil:
					if o.Err == nil {
						o.Err, l.failed = inst.startErr, i
					}
				case !inst.everReady && !inst.stopped:
					settled = false
				}
				if !settled && (o.Err != nil || !all) {
					break // the outcome is known, or there is no failure to find further
				}
			}
			if !settled && o.Err == nil {
				return false, nil
			}
			out = append(out, o)
		}
		return true, nil
	})
	return out, err
}

// RemoveService stops every process of a service gracefully, forgets the
// service, and waits until its processes have been reaped (or ctx ends).
func (c *Container) RemoveService(ctx context.Context, name string) error {
	if !c.isStarted() {
		return ErrStopped
	}
	var (
		svc *service
		err error
	)
	ok := c.do(func() {
		if svc = c.service(name); svc == nil {
			err = fmt.Errorf("remove %q: %w", name, ErrUnknownService)
			return
		}
		if svc.batch != nil {
			c.failBatch(svc.batch, fmt.Errorf("service %q removed: %w", name, ErrStopped))
		}
		for _, inst := range svc.instances {
			c.removeInstance(inst)
		}
		for i, s := range c.st.services {
			if s == svc {
				c.st.services = append(c.st.services[:i], c.st.services[i+1:]...)
				break
			}
		}
	})
	if !ok {
		return ErrStopped
	}
	if err != nil {
		return err
	}
	return c.wait(ctx, func() (bool, error) { return !c.hasProcs(svc, nil), nil })
}

// removeInstance takes inst out of service for good: its processes are
// stopped and it is never started again.
func (c *Container) removeInstance(inst *instance) {
	inst.removed = true
	c.cancelRestart(inst)
	for _, p := range []*proc{inst.cur, inst.next} {
		if p != nil {
			c.retire(p)
		}
	}
	inst.cur, inst.next = nil, nil
}

// hasProcs reports whether svc still has a process not reaped, or a spawn
// in flight (only among instances when given).
func (c *Container) hasProcs(svc *service, among []*instance) bool {
	in := func(inst *instance) bool {
		if inst.svc != svc {
			return false
		}
		if among == nil {
			return true
		}
		for _, x := range among {
			if x == inst {
				return true
			}
		}
		return false
	}
	found := false
	c.eachProc(func(p *proc) {
		if in(p.inst) {
			found = true
		}
	})
	for j := range c.st.inFlight {
		if in(j.inst) {
			found = true
		}
	}
	for _, j := range c.st.pending {
		if in(j.inst) {
			found = true
		}
	}
	return found
}

// Scale sets the number of instances of a service: new instances are
// started (Scale waits until they are ready, or one fails: then the error
// says which, and they keep being restarted as any instance is), and
// instances beyond n are stopped (Scale waits until they are reaped). The
// other instances are not touched.
func (c *Container) Scale(ctx context.Context, name string, n int) error {
	if n < 0 {
		return fmt.Errorf("scale %q to %d: %w", name, n, ErrInvalidSpec)
	}
	if !c.isStarted() {
		return ErrStopped
	}
	var (
		svc   *service
		added []*instance
		err   error
	)
	ok := c.do(func() {
		svc = c.service(name)
		switch {
		case c.st.stopping:
			err = ErrStopped
			return
		case svc == nil:
			err = fmt.Errorf("scale %q: %w", name, ErrUnknownService)
			return
		case svc.batch != nil:
			err = fmt.Errorf("scale %q: %w", name, ErrBusy)
			return
		}
		for i := len(svc.instances); i < n; i++ {
			inst := &instance{svc: svc, index: i}
			svc.instances = append(svc.instances, inst)
			added = append(added, inst)
			c.ensure(inst)
		}
		for _, inst := range svc.instances[min(n, len(svc.instances)):] {
			c.removeInstance(inst)
		}
		svc.instances = svc.instances[:n]
		svc.spec.Count = n
	})
	if !ok {
		return ErrStopped
	}
	if err != nil {
		return err
	}
	return c.wait(ctx, func() (bool, error) {
		for _, inst := range added {
			if inst.startErr != nil {
				return true, fmt.Errorf("scale %q: %w: %w", name, ErrNotReady, inst.startErr)
			}
			if !inst.everReady && !inst.removed {
				return false, nil
			}
		}
		for _, p := range c.st.retiring {
			if p.inst.svc == svc && p.inst.removed && !p.reaped {
				return false, nil
			}
		}
		return true, nil
	})
}
