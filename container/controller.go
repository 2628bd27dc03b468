package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vigild/vigil/logs"
	"github.com/vigild/vigil/notify"
)

// ErrNotRunning: the controller's Run has not started everything yet, or
// has stopped.
var ErrNotRunning = errors.New("controller not running")

// ControllerOptions configure a Controller. The zero value is ready to use.
type ControllerOptions struct {
	// Notify receives the controller's readiness messages for whatever
	// started it (nil = none): "Initializing controller...", ready with
	// "Running with N children.", reloading, stopping, and errors.
	Notify notify.Client
	// Policy decides on failed clocks and exits (nil = DefaultPolicy).
	Policy Policy
	// Logger receives events (nil = discard).
	Logger *slog.Logger
	// Logs captures every child's output (nil: a hub of the controller's
	// own, writing to Output). The caller closes a hub it gives.
	Logs *logs.Hub
	// Output receives every child's output lines when Logs is nil (nil =
	// os.Stdout).
	Output io.Writer
	// OutputBuffer bounds the bytes queued for Output (0 = package logs'
	// default).
	OutputBuffer int
	// CheckInterval is the shortest spacing of two checks of one child's
	// readiness clock (0 = DefaultCheckInterval).
	CheckInterval time.Duration
	// Spawners is how many threads start children (0 = the number of CPUs).
	Spawners int
	// Strict makes every service Required.
	Strict bool
	// Subreaper, when set, makes the controller an init for its children's
	// descendants: every child gets the subreaper's run id (EnvRun) and,
	// where cgroups are in force, a cgroup; descendants that outlive their
	// child are stopped, orphans reaped. The caller closes it after Run.
	Subreaper *Subreaper
}

// Controller runs services in one container: persistent services (such as
// vigil's supervisor) start first and stop last; Reload applies a new
// configuration by difference, each changed service replaced blue/green.
// Its methods are safe for concurrent use.
type Controller struct {
	opts   ControllerOptions
	logger *slog.Logger
	notify notify.Client
	stats  *statsRegistry

	opMu sync.Mutex // serialises Run's start and stop, and Reload

	mu         sync.Mutex
	specs      []Spec // the configuration in force
	ct         *Container
	running    bool
	started    chan struct{} // closed once the persistent services are ready
	ready      chan struct{} // closed once Run has every service ready or failed
	shutdown   chan struct{} // closed by Shutdown
	shutOnce   sync.Once
	failed     []ServiceOutcome // services that failed at start
	stopping   chan struct{}    // closed when Run begins to stop
	policyStop chan error
	wg         sync.WaitGroup // the container's watcher
}

// NewController validates specs (errors wrap ErrInvalidSpec) and returns a
// controller that has not started; call Run.
func NewController(specs []Spec, opts ControllerOptions) (*Controller, error) {
	if err := validateSpecs(specs); err != nil {
		return nil, err
	}
	c := &Controller{
		opts: opts, logger: opts.Logger, notify: opts.Notify, stats: new(statsRegistry),
		specs: cloneSpecs(specs), ready: make(chan struct{}), stopping: make(chan struct{}),
		started: make(chan struct{}), shutdown: make(chan struct{}),
		policyStop: make(chan error, 1),
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.notify == nil {
		c.notify = notify.Nop{}
	}
	return c, nil
}

func cloneSpecs(specs []Spec) []Spec {
	out := make([]Spec, len(specs))
	for i, s := range specs {
		s.Command, s.Env, s.Files = slices.Clone(s.Command), slices.Clone(s.Env), slices.Clone(s.Files)
		out[i] = s
	}
	return out
}

func (c *Controller) send(m notify.Message) {
	if err := c.notify.Send(m); err != nil {
		c.logger.Warn("notify failed", "error", err)
	}
}

func (c *Controller) sendError(err error) {
	if nerr := notify.Error(c.notify, err.Error(), -1); nerr != nil {
		c.logger.Warn("notify failed", "error", nerr)
	}
}

func split(specs []Spec) (persistent, other []Spec) {
	for _, s := range specs {
		if s.Persistent {
			persistent = append(persistent, s)
		} else {
			other = append(other, s)
		}
	}
	return persistent, other
}

// container returns the running container, nil before Run.
func (c *Controller) container() *Container {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ct
}

// Run starts the persistent services, one after the other, each once the
// one before is ready, then the other services together, waits until each
// has become ready or failed, then notifies ready ("Running with N
// children.", and which services failed). A service that fails at start is
// a state of that service: it is retried as its Spec says and the others
// run on, unless it is Required (or the controller Strict): then Run
// notifies the error, stops everything and returns it, as it does when a
// persistent service fails. Run runs until ctx ends or Shutdown, then stops
// everything gracefully, persistent services last, and returns nil; if the
// policy stops the container, Run stops everything and returns an error
// wrapping ErrStoppedByPolicy. Run may be called once.
func (c *Controller) Run(ctx context.Context) (err error) {
	c.opMu.Lock()
	if c.container() != nil {
		c.opMu.Unlock()
		return errors.New("controller: Run called twice")
	}
	hub := c.opts.Logs
	if hub == nil {
		hub = newHub(c.opts.Output, c.opts.OutputBuffer, c.logger)
	}
	closeOwnHub := func() {
		if c.opts.Logs == nil {
			closeHub(hub, c.logger)
		}
	}
	ct, err := NewContainer(nil, Options{
		Policy: c.opts.Policy, Logger: c.logger, CheckInterval: c.opts.CheckInterval,
		Spawners: c.opts.Spawners, Logs: hub, stats: c.stats, reaper: c.opts.Subreaper,
	})
	if c.opts.Subreaper != nil && err == nil {
		ct.opts.runID = c.opts.Subreaper.RunID()
	}
	if err == nil {
		err = ct.Start()
	}
	if err != nil {
		c.opMu.Unlock()
		closeOwnHub()
		return err
	}
	c.mu.Lock()
	c.ct = ct
	c.mu.Unlock()
	defer func() {
		c.wg.Wait()
		closeOwnHub()
	}()
	c.wg.Go(func() {
		<-ct.Done()
		if err := ct.Err(); err != nil {
			c.policyStop <- err
		}
	})
	c.send(notify.Message{Status: "Initializing controller..."})
	err = c.start(ctx, ct)
	if err == nil {
		c.mu.Lock()
		c.running = true
		close(c.ready)
		c.mu.Unlock()
		c.send(notify.Message{Ready: notify.Bool(true), Status: c.runningStatus()})
	} else {
		c.logger.Error("controller failed to start", "error", err)
		c.sendError(err)
	}
	c.opMu.Unlock()

	if err == nil {
		select {
		case <-ctx.Done():
		case <-c.shutdown:
		case err = <-c.policyStop:
			c.logger.Error("container stopped by its policy", "error", err)
			c.sendError(err)
		}
	}
	close(c.stopping) // aborts a Reload in progress
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.mu.Lock()
	c.running = false
	c.mu.Unlock()
	c.send(notify.Message{Stopping: true, Status: "Stopping..."})
	if serr := ct.Stop(context.Background()); serr != nil {
		c.logger.Error("stop failed", "error", serr)
	}
	return err
}

func (c *Controller) start(ctx context.Context, ct *Container) error {
	c.mu.Lock()
	persistent, other := split(c.specs)
	c.mu.Unlock()
	for _, s := range persistent {
		if err := ct.AddService(ctx, s); err != nil {
			return fmt.Errorf("start %s: %w", s.Name, err)
		}
	}
	close(c.started)
	if len(other) == 0 {
		return nil
	}
	outcomes, err := ct.StartServices(ctx, other)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	var failed []ServiceOutcome
	for _, o := range outcomes {
		if o.Err == nil {
			continue
		}
		for _, s := range other {
			if s.Name == o.Service && (s.Required || c.opts.Strict) {
				return fmt.Errorf("start: required service %s: %w: %w", o.Service, ErrNotReady, o.Err)
			}
		}
		c.logger.Error("service failed to start; the others run on, and it is retried", "service", o.Service, "error", o.Err)
		failed = append(failed, o)
	}
	c.mu.Lock()
	c.failed = failed
	c.mu.Unlock()
	return nil
}

func (c *Controller) runningStatus() string {
	n := 0
	for _, ci := range c.Children() {
		if ci.PID != 0 {
			n++
		}
	}
	status := fmt.Sprintf("Running with %d children.", n)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, f := range c.failed {
		if i == 0 {
			status += " Failed:"
		} else {
			status += ";"
		}
		status += fmt.Sprintf(" %s (%v)", f.Service, f.Err)
	}
	return status
}

// WaitStarted waits until the persistent services (vigil's supervisor)
// are ready: from then on the controller can be reached through them,
// while the other services are still starting. It returns ErrNotRunning
// if Run stops first, ctx's error if ctx ends.
func (c *Controller) WaitStarted(ctx context.Context) error {
	select {
	case <-c.started:
		return nil
	case <-c.stopping:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown makes Run stop everything gracefully and return, as if its
// context had ended.
func (c *Controller) Shutdown() {
	c.shutOnce.Do(func() { close(c.shutdown) })
}

// WaitReady waits until Run has started every service and each has become
// ready or failed (a failed service that is not Required does not stop Run;
// FailedAtStart lists them). It returns ErrNotRunning if Run stops first, ctx's error if ctx ends.
func (c *Controller) WaitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-c.stopping:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServiceChange is what a Reload did to one service.
type ServiceChange struct {
	// Service is the service's name.
	Service string `json:"service"`
	// Change is "started" (new), "replaced" (changed), "stopped"
	// (removed), or "unchanged".
	Change string `json:"change"`
	// Err is why the change failed (the old processes keep running), nil
	// when it happened.
	Err error `json:"-"`
}

// Reload applies specs by difference: a service whose spec is unchanged
// keeps running untouched; a changed one is replaced, blue/green or
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
	current := map[string]Spec{}
	for _, s := range ct.Specs() {
		current[s.Name] = s
	}
	var changes []ServiceChange
	wanted := map[string]bool{}
	persistent, other := split(specs)
	for _, group := range [][]Spec{persistent, other} {
		for _, s := range group {
			wanted[s.Name] = true
			old, ok := current[s.Name]
			ch := ServiceChange{Service: s.Name, Change: "unchanged"}
			switch {
			case !ok:
				ch.Change, ch.Err = "started", ct.AddService(ctx, s)
			case !equalSpec(old, s):
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

// abortOnStop returns a context cancelled when ctx ends or Run begins to
// stop; call done to release it.
func (c *Controller) abortOnStop(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-c.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(); <-watcherDone }
}

// Children describes every child (see Container.Children); nil before Run.
func (c *Controller) Children() []ChildInfo {
	if ct := c.container(); ct != nil {
		return ct.Children()
	}
	return nil
}

// Version counts the changes of what Children shows (see
// Container.Version); 0 before Run.
func (c *Controller) Version() uint64 {
	if ct := c.container(); ct != nil {
		return ct.Version()
	}
	return 0
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
