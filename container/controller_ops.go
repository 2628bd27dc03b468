package container

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Specs returns the specs in force, in order.
func (c *Controller) Specs() []Spec {
	if ct := c.container(); ct != nil {
		return ct.Specs()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return cloneSpecs(c.specs)
}

// FailedAtStart lists the services that failed when Run started them and
// were left failed (retried as their Spec says).
func (c *Controller) FailedAtStart() []ServiceOutcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.failed)
}

// StopService stops a service's instances (index -1: all) and keeps them
// stopped, across reloads, until StartService: see Container.StopService.
func (c *Controller) StopService(ctx context.Context, service string, index int) error {
	ct := c.container()
	if ct == nil {
		return fmt.Errorf("stop %q: %w", service, ErrNotRunning)
	}
	return ct.StopService(ctx, service, index)
}

// StartService starts a service's stopped or failed instances (index -1:
// all) and waits until they are ready: see Container.StartService.
func (c *Controller) StartService(ctx context.Context, service string, index int) error {
	ct := c.container()
	if ct == nil {
		return fmt.Errorf("start %q: %w", service, ErrNotRunning)
	}
	ctx, done := c.abortOnStop(ctx)
	defer done()
	return ct.StartService(ctx, service, index)
}

// Scale sets a service's number of instances: see Container.Scale. The new
// count holds across reloads that do not change the service.
func (c *Controller) Scale(ctx context.Context, service string, n int) error {
	ct := c.container()
	if ct == nil {
		return fmt.Errorf("scale %q: %w", service, ErrNotRunning)
	}
	ctx, done := c.abortOnStop(ctx)
	defer done()
	return ct.Scale(ctx, service, n)
}

// RestartChildren restarts a service's instances one at a time (instance
// -1: all), each only after its replacement is ready: see
// Container.RestartChildren. When Run begins to stop, the replacement being
// waited for is stopped.
func (c *Controller) RestartChildren(ctx context.Context, service string, instance int) error {
	ct := c.container()
	if ct == nil {
		return fmt.Errorf("restart %q: %w", service, ErrNotRunning)
	}
	ctx, done := c.abortOnStop(ctx)
	defer done()
	return ct.RestartChildren(ctx, service, instance)
}

// Statistics returns the statistics of each configured service, counted
// across reloads.
func (c *Controller) Statistics() []Statistics {
	c.mu.Lock()
	specs := c.specs
	c.mu.Unlock()
	if ct := c.container(); ct != nil {
		live := map[string]Statistics{}
		for _, st := range ct.Statistics() {
			live[st.Service] = st
		}
		out := make([]Statistics, len(specs))
		for i, s := range specs {
			if st, ok := live[s.Name]; ok {
				out[i] = st
			} else {
				out[i] = c.stats.get(s.Name).snapshot(s.Name, time.Now())
			}
		}
		return out
	}
	now := time.Now()
	out := make([]Statistics, len(specs))
	for i, s := range specs {
		out[i] = c.stats.get(s.Name).snapshot(s.Name, now)
	}
	return out
}

// Version counts the changes of what Children shows (see
// Container.Version); 0 before Run.
func (c *Controller) Version() uint64 {
	if ct := c.container(); ct != nil {
		return ct.Version()
	}
	return 0
}

// Children describes every child (see Container.Children); nil before Run.
func (c *Controller) Children() []ChildInfo {
	if ct := c.container(); ct != nil {
		return ct.Children()
	}
	return nil
}
