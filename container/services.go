package container

import (
	"context"
	"fmt"
	"slices"
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
	var out []ServiceOutcome
	err = c.wait(ctx, func() (bool, error) {
		out = out[:0]
		for _, name := range names {
			svc := c.service(name)
			if svc == nil {
				continue
			}
			o := ServiceOutcome{Service: name}
			settled := true
			for _, inst := range svc.instances {
				switch {
				case inst.startErr != nil:
					if o.Err == nil {
						o.Err = inst.startErr
					}
				case !inst.everReady && !inst.stopped:
					settled = false
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

// ReplaceService restarts a service with spec, blue/green: a new process is
// started for every instance beside the running one (and for instances
// added when spec.Count is larger); once every new process is ready, they
// take the old ones' places together, the old ones are stopped gracefully
// (with the instances beyond a smaller Count), and ReplaceService returns
// once they have been reaped. If a new process exits or fails before that,
// or ctx ends, the new processes are stopped, the old ones keep running,
// and the error (wrapping ErrReplacementFailed or ctx's) is returned.
func (c *Container) ReplaceService(ctx context.Context, spec Spec) error {
	if err := validateSpecs([]Spec{spec}); err != nil {
		return err
	}
	if !c.isStarted() {
		return ErrStopped
	}
	spec = spec.withDefaults()
	if spec.Rolling || spec.Port > 0 {
		return c.rollService(ctx, spec)
	}
	var (
		b       *batch
		svc     *service
		retired []*instance
		err     error
		asleep  bool
	)
	ok := c.do(func() {
		if svc, err = c.replaceable(spec); err != nil {
			return
		}
		if asleep = allStopped(svc); asleep {
			c.resize(svc, spec)
			return
		}
		b = c.newBatch(svc, true)
		svc.batch = b
		newSpec := spec
		old := len(svc.instances)
		for i := range max(old, spec.Count) {
			if i >= spec.Count {
				retired = append(retired, svc.instances[i])
				continue
			}
			if i >= old {
				svc.instances = append(svc.instances, &instance{svc: svc, index: i})
			}
			c.startMember(b, svc.instances[i], &newSpec, false)
		}
		b.commit = func() {
			svc.spec = newSpec
			for _, inst := range retired {
				c.removeInstance(inst)
			}
			svc.instances = svc.instances[:newSpec.Count]
		}
		b.abandon = func(error) {
			for _, inst := range svc.instances[old:] {
				c.removeInstance(inst)
			}
			svc.instances = svc.instances[:old]
		}
	})
	if !ok {
		return ErrStopped
	}
	if err != nil || asleep {
		return err
	}
	err = c.await(ctx, b)
	if err != nil {
		err = fmt.Errorf("replace %q: %w: %w", spec.Name, ErrNotReady, err)
	}
	// The processes put aside (the old ones, or the new ones that failed)
	// are stopping: wait until they are gone.
	werr := c.wait(context.WithoutCancel(ctx), func() (bool, error) {
		for _, p := range c.st.retiring {
			if p.inst.svc == svc && !p.reaped {
				return false, nil
			}
		}
		return true, nil
	})
	if err == nil {
		err = werr
	}
	return err
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

// replaceable returns the service spec replaces, unless it is unknown or
// being replaced already.
func (c *Container) replaceable(spec Spec) (*service, error) {
	svc := c.service(spec.Name)
	switch {
	case c.st.stopping:
		return nil, ErrStopped
	case svc == nil:
		return nil, fmt.Errorf("replace %q: %w", spec.Name, ErrUnknownService)
	}
	for _, inst := range svc.instances {
		if inst.busy() {
			return nil, fmt.Errorf("replace %q: %s: %w", spec.Name, inst.name(), ErrBusy)
		}
	}
	return svc, nil
}

// allStopped reports whether every instance of svc is stopped by an
// operator.
func allStopped(svc *service) bool {
	for _, inst := range svc.instances {
		if !inst.stopped {
			return false
		}
	}
	return len(svc.instances) > 0
}

// resize gives a stopped service its new spec and count without starting
// anything: it stays stopped across the reload, until started.
func (c *Container) resize(svc *service, spec Spec) {
	svc.spec = spec
	for i := len(svc.instances); i < spec.Count; i++ {
		svc.instances = append(svc.instances, &instance{svc: svc, index: i, stopped: true})
	}
	for _, inst := range svc.instances[min(spec.Count, len(svc.instances)):] {
		c.removeInstance(inst)
	}
	svc.instances = svc.instances[:spec.Count]
}

// rollService replaces a service's processes with spec one instance at a
// time, each once its replacement is ready (for a service with a port,
// each stopped before its replacement starts), then starts the instances
// added by a larger Count and stops those beyond a smaller one. The new
// spec is in force from the start: if a replacement fails, the instances
// not yet replaced keep their old processes (and take the new spec at
// their next restart), and the error is returned.
func (c *Container) rollService(ctx context.Context, spec Spec) error {
	if !c.isStarted() {
		return ErrStopped
	}
	var (
		svc     *service
		targets []*instance
		err     error
		asleep  bool
	)
	ok := c.do(func() {
		if svc, err = c.replaceable(spec); err != nil {
			return
		}
		if asleep = allStopped(svc); asleep {
			c.resize(svc, spec)
			return
		}
		svc.spec = spec
		targets = slices.Clone(svc.instances[:min(spec.Count, len(svc.instances))])
	})
	if !ok {
		return ErrStopped
	}
	if err != nil || asleep {
		return err
	}
	for _, inst := range targets {
		if err := c.replaceOne(ctx, inst, false); err != nil {
			return fmt.Errorf("replace %q: %s: %w: %w", spec.Name, inst.name(), ErrNotReady, err)
		}
	}
	if err := c.Scale(ctx, spec.Name, spec.Count); err != nil {
		return fmt.Errorf("replace %q: %w", spec.Name, err)
	}
	return nil
}
