package container

import (
	"context"
	"fmt"
	"slices"
)

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
