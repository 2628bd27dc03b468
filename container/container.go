package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigild/vigil/logs"
)

// Sentinel errors.
var (
	// ErrStopped: the container is stopping or stopped.
	ErrStopped = errors.New("container stopped")
	// ErrStoppedByPolicy: the policy returned StopContainer.
	ErrStoppedByPolicy = errors.New("container stopped by its policy")
	// ErrNotReady wraps why a container did not become ready (a child exited
	// or failed its startup before it was ready, or could not be started).
	ErrNotReady = errors.New("container did not become ready")
	// ErrUnknownService: no service of that name.
	ErrUnknownService = errors.New("unknown service")
	// ErrUnknownInstance: no instance of that number.
	ErrUnknownInstance = errors.New("unknown instance")
	// ErrReplacementFailed: a replacement exited, or could not be started,
	// before it was ready; the old process keeps running.
	ErrReplacementFailed = errors.New("replacement failed")
	// ErrBusy: the instance or service is already being replaced.
	ErrBusy = errors.New("already being replaced")
	// ErrServiceExists: a service of that name is already running.
	ErrServiceExists = errors.New("service already exists")
)

// DefaultCheckInterval is the shortest spacing of two checks of one child's
// readiness clock once it has been re-armed by the child's messages: a
// child that fails its clock is found within this long after its timeout.
const DefaultCheckInterval = time.Second

// outputGrace is how long a child's pipes are read after it was reaped, for
// output still buffered, before they are closed (a grandchild that escaped
// the process group may hold them open).
const outputGrace = 500 * time.Millisecond

// Options configure a Container. The zero value is ready to use.
type Options struct {
	// Policy decides on failed clocks and exits (nil = DefaultPolicy).
	Policy Policy
	// Logger receives the container's events (nil = discard).
	Logger *slog.Logger
	// Logs captures the children's stdout and stderr: where the lines go,
	// and the rings of recent lines. Nil: a hub of the container's own,
	// writing to Output.
	Logs *logs.Hub
	// Output receives the children's stdout and stderr lines, prefixed
	// "service.instance | " (nil = os.Stdout), when Logs is nil. Written by
	// one goroutine.
	Output io.Writer
	// OutputBuffer bounds the bytes queued for Output; lines beyond it are
	// dropped and counted (0 = package logs' default).
	OutputBuffer int
	// CheckInterval is the shortest spacing of two checks of one child's
	// readiness clock (0 = DefaultCheckInterval).
	CheckInterval time.Duration
	// Spawners is how many threads start children (0 = the number of
	// CPUs). Each stays alive, locked, for the container's lifetime: Linux
	// delivers a child's parent-death signal when the thread that created
	// it exits.
	Spawners int

	// Seams for tests and for the Controller.
	now          func() time.Time
	jitter       func() float64
	sys          *sysOps
	stats        *statsRegistry
	runID        string     // EnvRun of every child ("" = none)
	reaper       *Subreaper // nil: none
	manualAlarms bool       // tests: the timer is never armed
	sharedFDs    bool       // tests: spawners fork from the process's descriptor table
}

// Container runs the children of a set of services. Create it with
// NewContainer, then Start; it runs until Stop (or until its policy stops it:
// see Done and Err). Its methods are safe for concurrent use.
//
// All of its state (services, instances, their processes, clocks, back-off,
// stopping) is owned by one goroutine, the loop, which receives events
// (a child exited, a child said something, a spawn finished, a deadline
// passed) and commands (the methods). No lock is held over that state and
// no child is forked by the loop: spawning runs on the spawner threads.
type Container struct {
	opts     Options
	logger   *slog.Logger
	policy   Policy
	sys      *sysOps
	hub      *logs.Hub
	ownHub   bool
	stats    *statsRegistry
	interval time.Duration
	specs    []Spec // as given to NewContainer, defaults filled in

	startMu  sync.Mutex // guards started against concurrent Start and Stop
	started  bool
	cmds     chan command
	version  atomic.Uint64 // counts the changes of what Children shows
	events   chan event
	loopDone chan struct{} // closed when the loop has returned
	done     chan struct{} // closed when fully stopped
	wg       sync.WaitGroup
	pool     *spawnPool
	watcher  *watcher // nil: each child has goroutines of its own (see watchProc)
	devnull  *os.File
	// inherited is what every child inherits of the controller's
	// environment (see inheritedEnv), as it was at Start.
	inherited []string

	errMu sync.Mutex
	err   error // why it stopped by itself

	// Owned by the loop.
	st loopState
}

// NewContainer validates specs (errors wrap ErrInvalidSpec and name the
// service and field) and returns a container that has not started.
func NewContainer(specs []Spec, opts Options) (*Container, error) {
	if err := validateSpecs(specs); err != nil {
		return nil, err
	}
	c := &Container{
		opts:     opts,
		logger:   opts.Logger,
		policy:   opts.Policy,
		sys:      opts.sys,
		hub:      opts.Logs,
		stats:    opts.stats,
		interval: opts.CheckInterval,
		cmds:     make(chan command),
		events:   make(chan event, 256),
		loopDone: make(chan struct{}),
		done:     make(chan struct{}),
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.policy == nil {
		c.policy = DefaultPolicy{}
	}
	if c.stats == nil {
		c.stats = new(statsRegistry)
	}
	if c.sys == nil {
		c.sys = defaultSys()
	}
	if c.interval <= 0 {
		c.interval = DefaultCheckInterval
	}
	if c.opts.now == nil {
		c.opts.now = time.Now
	}
	if c.opts.jitter == nil {
		c.opts.jitter = rand.Float64
	}
	if c.opts.Spawners <= 0 {
		c.opts.Spawners = runtime.NumCPU()
	}
	for _, s := range specs {
		s = s.withDefaults()
		c.specs = append(c.specs, s)
		c.st.services = append(c.st.services, c.newService(s))
	}
	return c, nil
}

func (c *Container) now() time.Time { return c.opts.now() }

// Start starts every instance of every service and returns; children that
// fail to start are retried with back-off and reported by WaitReady. Start
// may be called once; call Stop to release everything.
func (c *Container) Start() error {
	if !supported {
		return fmt.Errorf("start: %w", ErrUnsupported)
	}
	c.startMu.Lock()
	defer c.startMu.Unlock()
	if c.started {
		return errors.New("start: container already started")
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	c.devnull = devnull
	c.inherited = inheritedEnv(os.Environ())
	if c.hub == nil {
		c.hub = newHub(c.opts.Output, c.opts.OutputBuffer, c.logger)
		c.ownHub = true
	}
	c.started = true
	c.st.timer = time.NewTimer(time.Hour)
	c.st.timer.Stop()
	c.pool = newSpawnPool(c.opts.Spawners, c.sys, c.opts.sharedFDs)
	if c.sys.epoll != nil {
		w, err := newWatcher(c)
		if err != nil {
			c.logger.Warn("no epoll set to watch the children: each has goroutines of its own", "error", err)
		} else {
			c.watcher = w
			c.wg.Add(1)
			go w.run()
		}
	}
	for _, svc := range c.st.services {
		for _, inst := range svc.instances {
			c.ensure(inst)
		}
	}
	go c.loop()
	go c.finisher()
	return nil
}

// finisher releases the container once its loop has returned: every child
// has been reaped and no spawn is in flight.
func (c *Container) finisher() {
	<-c.loopDone
	c.closeProbes() // before the pool: exec probes run on it
	if c.watcher != nil {
		c.watcher.close()
	}
	c.wg.Wait()
	c.pool.stop()
	c.devnull.Close()
	if c.ownHub {
		closeHub(c.hub, c.logger)
	}
	close(c.done)
}

// do runs fn on the loop and waits for it. It reports false, without
// running fn, when the loop has ended.
func (c *Container) do(fn func()) bool { return c.send1(fn, true) }

// read runs fn, which changes nothing, on the loop (see do).
func (c *Container) read(fn func()) bool { return c.send1(fn, false) }

// command is a function the loop runs for a method; changes says whether
// it may change what Children shows.
type command struct {
	fn      func()
	changes bool
}

func (c *Container) send1(fn func(), changes bool) bool {
	ran := make(chan struct{})
	select {
	case c.cmds <- command{fn: func() { fn(); close(ran) }, changes: changes}:
		<-ran
		return true
	case <-c.loopDone:
		return false
	}
}

// isStarted reports whether Start ran.
func (c *Container) isStarted() bool {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	return c.started
}

// Stop stops every child gracefully (see Spec.GracefulStop; persistent
// services last) and waits until every child has been reaped and every
// goroutine of the container has ended. When ctx ends first, the children
// left are killed with SIGKILL, Stop still waits for them to be reaped, and
// returns ctx's error. Stop may be called more than once and on a container
// never started.
func (c *Container) Stop(ctx context.Context) error {
	c.startMu.Lock()
	if !c.started {
		c.started = true
		close(c.loopDone)
		close(c.done)
		c.startMu.Unlock()
		return nil
	}
	c.startMu.Unlock()
	c.do(c.beginStop)
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.do(c.killAll)
		<-c.done
		return fmt.Errorf("stop: %w", ctx.Err())
	}
}

// Done is closed when the container has stopped completely, whether by
// Stop or by its policy.
func (c *Container) Done() <-chan struct{} { return c.done }

// Err returns ErrStoppedByPolicy if the policy stopped the container, nil
// otherwise.
func (c *Container) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// WaitReady waits until every instance of every service has been ready at
// least once. It returns an error wrapping ErrNotReady as soon as an
// instance that was never ready fails (exits, fails its startup clock,
// cannot be started); ErrStopped if the container stops; ctx's error when
// ctx ends.
func (c *Container) WaitReady(ctx context.Context) error {
	return c.wait(ctx, func() (bool, error) { return c.readyState(nil) })
}

// wait blocks until cond, evaluated on the loop after every change, says
// done; its error is returned.
func (c *Container) wait(ctx context.Context, cond func() (bool, error)) error {
	if !c.isStarted() {
		return ErrStopped
	}
	w := &waiter{cond: cond, reply: make(chan error, 1)}
	if !c.do(func() { c.addWaiter(w) }) {
		return ErrStopped
	}
	select {
	case err := <-w.reply:
		return err
	case <-ctx.Done():
		c.do(func() { c.removeWaiter(w) })
		return fmt.Errorf("wait: %w", ctx.Err())
	}
}

// Children describes every child, by service (in order) and instance: an
// instance's current process (or the instance itself when none runs), its
// replacement being started, and then the processes being stopped.
func (c *Container) Children() []ChildInfo {
	var out []ChildInfo
	if !c.isStarted() || !c.read(func() { out = c.children(c.now()) }) {
		// No loop runs: the state does not change.
		out = c.children(c.now())
	}
	return out
}

// Version counts the changes of what Children shows, other than time
// passing (uptimes): a caller may keep what it made of Children while
// Version is the same.
func (c *Container) Version() uint64 { return c.version.Load() }

// Specs returns the container's specs as they are now, defaults filled in.
func (c *Container) Specs() []Spec {
	var out []Spec
	read := func() {
		for _, svc := range c.st.services {
			out = append(out, svc.spec)
		}
	}
	if !c.isStarted() || !c.read(read) {
		read()
	}
	return out
}

// Statistics returns each service's statistics, in order; the output
// lines dropped include those of the processes still running.
func (c *Container) Statistics() []Statistics {
	now := c.now()
	var out []Statistics
	live := map[string]uint64{}
	read := func() {
		c.eachProc(func(p *proc) {
			if p.capture != nil && !p.reaped {
				live[p.spec.Name] += p.capture.Stats().Dropped()
			}
		})
	}
	if c.isStarted() {
		c.read(read)
	}
	for _, s := range c.Specs() {
		st := c.stats.get(s.Name).snapshot(s.Name, now)
		st.OutputDroppedLines += live[s.Name]
		out = append(out, st)
	}
	return out
}
