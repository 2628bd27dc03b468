package container

import (
	"context"
	"fmt"

	"github.com/vigild/vigil/notify"
)

// ServiceChange is what a Reload did to one service.
type ServiceChange struct {
	// Service is the service's name.
	Service string `json:"service"`
	// Change is "started" (new), "replaced" (changed), "scaled" (its
	// count alone changed), "stopped" (removed), or "unchanged".
	Change string `json:"change"`
	// Err is why the change failed (the old processes keep running), nil
	// when it happened.
	Err error `json:"-"`
}

// Reload applies specs by difference, against the specs applied before: a
// service whose spec is unchanged keeps running untouched (also if an
// operator scaled it since); one whose count alone changed is scaled; a
// changed one is replaced, blue/green or
// rolling as its spec says (see Container.ReplaceService); a new one is
// started; one no longer configured is stopped; a service stopped by an
// operator takes its new spec but stays stopped. Persistent services go
// first. If a service cannot be replaced or started (a new process exits
// or fails its startup timeout before it is ready, or ctx ends, or Run
// stops), its old processes keep running, the services not yet reached
// are left as they are, and the error is returned and notified, with what
// was done so far. Reload returns once the old processes have stopped.
func (c *Controller) Reload(ctx context.Context, specs []Spec) ([]ServiceChange, error) {
	if err := validateSpecs(specs); err != nil {
		c.sendError(fmt.Errorf("reload: %w", err))
		return nil, fmt.Errorf("reload: %w", err)
	}
	specs = cloneSpecs(specs)
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.mu.Lock()
	running, ct := c.running, c.ct
	c.mu.Unlock()
	if !running {
		return nil, fmt.Errorf("reload: %w", ErrNotRunning)
	}
	ctx, done := c.abortOnStop(ctx)
	defer done()

	c.send(notify.Message{Reloading: true, Ready: notify.Bool(false), Status: "Reloading..."})
	changes, err := c.reload(ctx, ct, specs)
	c.mu.Lock()
	if err == nil {
		c.specs = specs
	} else {
		c.specs = ct.Specs() // what is in force, part old, part new
	}
	c.mu.Unlock()
	if err != nil {
		c.logger.Error("reload failed; the old services keep running", "error", err)
		c.sendError(fmt.Errorf("reload: %w", err))
	}
	select {
	case <-c.stopping:
	default:
		c.send(notify.Message{Ready: notify.Bool(true), Status: c.runningStatus()})
	}
	if err != nil {
		return changes, fmt.Errorf("reload: %w", err)
	}
	return changes, nil
}

func (c *Controller) reload(ctx context.Context, ct *Container, specs []Spec) ([]ServiceChange, error) {
	// The new configuration is compared with the one applied before, not
	// with what runs: a service an operator scaled stays as it is while
	// its configuration does not change.
	c.mu.Lock()
	prev := map[string]Spec{}
	for _, s := range c.specs {
		prev[s.Name] = s
	}
	c.mu.Unlock()
	live := map[string]bool{}
	for _, s := range ct.Specs() {
		live[s.Name] = true
	}
	var changes []ServiceChange
	wanted := map[string]bool{}
	persistent, other := split(specs)
	for _, group := range [][]Spec{persistent, other} {
		for _, s := range group {
			wanted[s.Name] = true
			old, ok := prev[s.Name]
			ch := ServiceChange{Service: s.Name, Change: "unchanged"}
			switch {
			case !ok || !live[s.Name]:
				ch.Change, ch.Err = "started", ct.AddService(ctx, s)
			case equalSpec(old, s):
			case onlyCount(old, s):
				ch.Change, ch.Err = "scaled", ct.Scale(ctx, s.Name, s.withDefaults().Count)
			default:
				ch.Change, ch.Err = "replaced", ct.ReplaceService(ctx, s)
			}
			changes = append(changes, ch)
			if ch.Err != nil {
				return changes, fmt.Errorf("%s: %w", s.Name, ch.Err)
			}
		}
	}
	// Services no longer configured: the others first, persistent last.
	oldPersistent, oldOther := split(ct.Specs())
	for _, group := range [][]Spec{oldOther, oldPersistent} {
		for _, s := range group {
			if !wanted[s.Name] {
				ch := ServiceChange{Service: s.Name, Change: "stopped", Err: ct.RemoveService(ctx, s.Name)}
				changes = append(changes, ch)
				if ch.Err != nil {
					return changes, fmt.Errorf("%s: %w", s.Name, ch.Err)
				}
			}
		}
	}
	return changes, nil
}

// onlyCount reports whether a and b differ in their Count alone.
func onlyCount(a, b Spec) bool {
	a.Count, b.Count = 1, 1
	return equalSpec(a, b)
}
