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
	hurry      chan struct{} // closed by StopNow
	hurryOnce  sync.Once
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
		started: make(chan struct{}), shutdown: make(chan struct{}), hurry: make(chan struct{}),
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
	err = c.startPersistent(ctx, ct)
	if err == nil {
		// From here on the controller takes commands (a reload, a stop),
		// while the other services start.
		c.mu.Lock()
		c.running = true
		c.mu.Unlock()
	}
	c.opMu.Unlock()
	interrupted := false
	if err == nil {
		startCtx, cancel := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			select {
			case <-c.shutdown:
				cancel()
			case <-startCtx.Done():
			}
		}()
		err = c.startOthers(startCtx, ct)
		interrupted = err != nil && startCtx.Err() != nil
		cancel()
		<-watched
	}
	switch {
	case interrupted: // told to stop while starting: no failure
		err = nil
	case err == nil:
		// Notified before WaitReady returns: what follows comes after.
		c.send(notify.Message{Ready: notify.Bool(true), Status: c.runningStatus()})
		c.mu.Lock()
		close(c.ready)
		c.mu.Unlock()
	default:
		c.logger.Error("controller failed to start", "error", err)
		c.sendError(err)
	}

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
	stopCtx, hurried := context.WithCancel(context.Background())
	defer hurried()
	go func() { // ends with Run: hurried is called on return
		select {
		case <-c.hurry:
			hurried()
		case <-stopCtx.Done():
		}
	}()
	if serr := ct.Stop(stopCtx); serr != nil && !errors.Is(serr, context.Canceled) {
		c.logger.Error("stop failed", "error", serr)
	}
	return err
}

// startPersistent starts the persistent services, one after the other.
func (c *Controller) startPersistent(ctx context.Context, ct *Container) error {
	c.mu.Lock()
	persistent, _ := split(c.specs)
	c.mu.Unlock()
	for _, s := range persistent {
		if err := ct.AddService(ctx, s); err != nil {
			return fmt.Errorf("start %s: %w", s.Name, err)
		}
	}
	close(c.started)
	return nil
}

// startOthers starts the other services together and waits until each has
// become ready or failed: a failed Required one (or any, Strict) is an
// error, the others are logged and left to their retries.
func (c *Controller) startOthers(ctx context.Context, ct *Container) error {
	c.mu.Lock()
	_, other := split(c.specs)
	c.mu.Unlock()
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

// StopNow stops Run at once: what a graceful stop (Shutdown, ctx's end)
// has not stopped yet is killed with SIGKILL, and so is everything if
// the stop had not begun.
func (c *Controller) StopNow() {
	c.hurryOnce.Do(func() { close(c.hurry) })
	c.Shutdown()
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
