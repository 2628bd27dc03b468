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
	// Policy is given to every container (nil = DefaultPolicy). During a
	// Reload it sees the children of the old and the new container.
	Policy Policy
	// Logger receives events (nil = discard).
	Logger *slog.Logger
	// Output receives every child's output lines (nil = os.Stdout).
	Output io.Writer
	// OutputBuffer bounds the bytes queued for Output (0 = 1 MiB).
	OutputBuffer int
	// CheckInterval is the granularity of the readiness clocks (0 =
	// DefaultCheckInterval).
	CheckInterval time.Duration
}

// Controller runs services in containers and swaps them blue/green on
// Reload. Persistent services each get a container of their own, started
// first and stopped last; the other services share one container. All
// containers share one output writer and the statistics, which survive
// reloads. Persistent does not imply Restart: vigil's supervisor spec sets
// both. Its methods are safe for concurrent use.
type Controller struct {
	opts   ControllerOptions
	logger *slog.Logger
	notify notify.Client
	stats  *statsRegistry

	opMu sync.Mutex // serialises Run's start and stop, and Reload

	mu         sync.Mutex
	specs      []Spec // the configuration in force
	sink       *lineSink
	persistent []*Container // in spec order
	current    *Container   // the other services (nil if none)
	next       *Container   // being started by Reload
	retiring   []*Container // being stopped
	running    bool
	ready      chan struct{} // closed once Run has everything ready
	stopping   chan struct{} // closed when Run begins to stop
	policyStop chan error
	wg         sync.WaitGroup // container watchers
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
		s.Command, s.Env = slices.Clone(s.Command), slices.Clone(s.Env)
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

// newContainer creates and starts a container sharing the controller's
// output and statistics, and watches it for a stop by its policy.
func (c *Controller) newContainer(specs []Spec) (*Container, error) {
	ct, err := NewContainer(specs, Options{
		Policy: c.opts.Policy, Logger: c.logger, CheckInterval: c.opts.CheckInterval,
		sink: c.sink, stats: c.stats,
	})
	if err != nil {
		return nil, err
	}
	if err := ct.Start(); err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		<-ct.Done()
		if err := ct.Err(); err != nil {
			select {
			case c.policyStop <- fmt.Errorf("services %v: %w", specNames(ct.Specs()), err):
			default:
			}
		}
	}()
	return ct, nil
}

func specNames(specs []Spec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}

// startReady starts a container for specs and waits until it is ready; on
// failure it stops it again. Meanwhile the container is c.next (shown by
// Children); on success place runs under c.mu as it stops being c.next.
func (c *Controller) startReady(ctx context.Context, specs []Spec, place func(*Container)) (*Container, error) {
	ct, err := c.newContainer(specs)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.next = ct
	c.mu.Unlock()
	err = ct.WaitReady(ctx)
	c.mu.Lock()
	c.next = nil
	if err == nil {
		place(ct)
	}
	c.mu.Unlock()
	if err != nil {
		_ = ct.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	return ct, nil
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

// Run starts the persistent services, each in its container, waits until
// they are ready, then starts the other services in one container and waits
// until they are ready, then notifies ready ("Running with N children."). It
// runs until ctx ends, then stops everything gracefully, persistent services
// last, and returns nil. If a service fails to become ready at start (see
// Container.WaitReady), Run notifies the error, stops everything and returns
// it; if a policy stops a container, Run stops everything and returns an
// error wrapping ErrStoppedByPolicy. Run may be called once.
func (c *Controller) Run(ctx context.Context) (err error) {
	c.opMu.Lock()
	if c.sink != nil {
		c.opMu.Unlock()
		return errors.New("controller: Run called twice")
	}
	c.mu.Lock()
	c.sink = newLineSink(c.opts.Output, c.opts.OutputBuffer)
	c.mu.Unlock()
	defer func() {
		c.wg.Wait()
		c.sink.close()
	}()
	c.send(notify.Message{Status: "Initializing controller..."})
	err = c.start(ctx)
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
	c.stopAll()
	return err
}

func (c *Controller) start(ctx context.Context) error {
	persistent, other := split(c.specs)
	for _, s := range persistent {
		_, err := c.startReady(ctx, []Spec{s}, func(ct *Container) { c.persistent = append(c.persistent, ct) })
		if err != nil {
			return fmt.Errorf("start %s: %w", s.Name, err)
		}
	}
	if len(other) > 0 {
		_, err := c.startReady(ctx, other, func(ct *Container) { c.current = ct })
		if err != nil {
			return fmt.Errorf("start: %w", err)
		}
	}
	return nil
}

// stopAll stops the current container, then the persistent ones in reverse
// order. Each stop is graceful, bounded by the children's GracefulStop.
func (c *Controller) stopAll() {
	c.mu.Lock()
	cur, pers := c.current, slices.Clone(c.persistent)
	c.mu.Unlock()
	if cur != nil {
		c.retire(cur)
	}
	for i := len(pers) - 1; i >= 0; i-- {
		c.retire(pers[i])
	}
	c.mu.Lock()
	c.current, c.persistent = nil, nil
	c.mu.Unlock()
}

// retire stops ct; it stays visible in Children until stopped.
func (c *Controller) retire(ct *Container) {
	c.mu.Lock()
	if !slices.Contains(c.retiring, ct) {
		c.retiring = append(c.retiring, ct)
	}
	if c.current == ct {
		c.current = nil
	}
	c.persistent = slices.DeleteFunc(c.persistent, func(x *Container) bool { return x == ct })
	c.mu.Unlock()
	if err := ct.Stop(context.Background()); err != nil {
		c.logger.Error("stop failed", "error", err)
	}
	c.mu.Lock()
	c.retiring = slices.DeleteFunc(c.retiring, func(x *Container) bool { return x == ct })
	c.mu.Unlock()
}

func (c *Controller) runningStatus() string {
	n := 0
	for _, ci := range c.Children() {
		if ci.PID != 0 {
			n++
		}
	}
	return fmt.Sprintf("Running with %d children.", n)
}

// WaitReady waits until Run has started every service and they were all
// ready. It returns ErrNotRunning if Run stops first, ctx's error if ctx ends.
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

// Reload replaces the running services by specs, blue/green: a persistent
// service whose spec is unchanged keeps running; a changed or new one gets a
// new container which must become ready before the old one is stopped; then
// a new container for all the other services is started beside the old one,
// and once every child of it has been ready, the old container is stopped
// gracefully. If a new container fails to become ready (a child exits or
// fails its startup timeout before it is ready, or ctx ends, or Run stops),
// it is stopped, the old one keeps running, and the error is returned and
// notified. Reload returns after the old containers have stopped.
func (c *Controller) Reload(ctx context.Context, specs []Spec) error {
	if err := validateSpecs(specs); err != nil {
		c.sendError(fmt.Errorf("reload: %w", err))
		return fmt.Errorf("reload: %w", err)
	}
	specs = cloneSpecs(specs)
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.mu.Lock()
	running := c.running
	c.mu.Unlock()
	if !running {
		return fmt.Errorf("reload: %w", ErrNotRunning)
	}
	ctx, done := c.abortOnStop(ctx)
	defer done()

	c.send(notify.Message{Reloading: true, Ready: notify.Bool(false), Status: "Reloading..."})
	err := c.reload(ctx, specs)
	if err != nil {
		c.logger.Error("reload failed; the old services keep running", "error", err)
		c.sendError(fmt.Errorf("reload: %w", err))
	} else {
		c.mu.Lock()
		c.specs = specs
		c.mu.Unlock()
	}
	select {
	case <-c.stopping:
	default:
		c.send(notify.Message{Ready: notify.Bool(true), Status: c.runningStatus()})
	}
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	return nil
}

func (c *Controller) reload(ctx context.Context, specs []Spec) error {
	persistent, other := split(specs)
	c.mu.Lock()
	oldPersistent := slices.Clone(c.persistent)
	c.mu.Unlock()
	byName := make(map[string]*Container)
	for _, ct := range oldPersistent {
		byName[ct.Specs()[0].Name] = ct
	}
	// Persistent services first: the others may depend on them.
	for _, s := range persistent {
		old := byName[s.Name]
		delete(byName, s.Name)
		if old != nil && equalSpec(old.Specs()[0], s) {
			continue
		}
		_, err := c.startReady(ctx, []Spec{s}, func(ct *Container) { c.persistent = append(c.persistent, ct) })
		if err != nil {
			// Persistent services already swapped stay swapped.
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		if old != nil {
			c.retire(old)
		}
	}
	c.mu.Lock()
	// Rebuild in the new spec order.
	var ordered []*Container
	for _, s := range persistent {
		for _, ct := range c.persistent {
			if ct.Specs()[0].Name == s.Name {
				ordered = append(ordered, ct)
			}
		}
	}
	c.mu.Unlock()

	c.mu.Lock()
	old := c.current
	c.mu.Unlock()
	if len(other) > 0 {
		_, err := c.startReady(ctx, other, func(ct *Container) {
			// The old one stays visible until stopped.
			c.current = ct
			if old != nil {
				c.retiring = append(c.retiring, old)
			}
		})
		if err != nil {
			return err
		}
	} else if old != nil {
		c.mu.Lock()
		c.current = nil
		c.retiring = append(c.retiring, old)
		c.mu.Unlock()
	}
	if old != nil {
		c.retire(old)
	}
	// Persistent services no longer configured go last.
	for _, ct := range oldPersistent {
		if byName[ct.Specs()[0].Name] == ct {
			c.retire(ct)
		}
	}
	c.mu.Lock()
	c.persistent = ordered
	c.mu.Unlock()
	return nil
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

// Children describes every child of every container: persistent services,
// the current container, one being started by Reload, and ones being
// stopped.
func (c *Controller) Children() []ChildInfo {
	c.mu.Lock()
	cts := slices.Clone(c.persistent)
	cts = append(cts, c.current, c.next)
	cts = append(cts, c.retiring...)
	c.mu.Unlock()
	var out []ChildInfo
	for _, ct := range cts {
		if ct != nil {
			out = append(out, ct.Children()...)
		}
	}
	return out
}

// Statistics returns the statistics of each configured service, counted
// across reloads.
func (c *Controller) Statistics() []Statistics {
	c.mu.Lock()
	specs := c.specs
	c.mu.Unlock()
	now := time.Now()
	out := make([]Statistics, len(specs))
	for i, s := range specs {
		out[i] = c.stats.get(s.Name).snapshot(s.Name, now)
	}
	return out
}

// RestartChildren restarts a service's instances one at a time (instance
// -1: all), each only after its replacement is ready: see
// Container.RestartChildren.
//
// It does not wait for a Reload in progress: if a Reload stops the
// container meanwhile, it returns an error wrapping ErrStopped. When Run
// begins to stop, the replacement being waited for is stopped.
func (c *Controller) RestartChildren(ctx context.Context, service string, instance int) error {
	ctx, done := c.abortOnStop(ctx)
	defer done()
	c.mu.Lock()
	cts := append(slices.Clone(c.persistent), c.current)
	c.mu.Unlock()
	for _, ct := range cts {
		if ct == nil {
			continue
		}
		for _, s := range ct.Specs() {
			if s.Name == service {
				return ct.RestartChildren(ctx, service, instance)
			}
		}
	}
	return fmt.Errorf("restart %q: %w", service, ErrUnknownService)
}
