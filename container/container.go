package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigild/vigil/notify"
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
	// ErrReplacementFailed: a replacement started by RestartChildren exited
	// before it was ready; the old process keeps running.
	ErrReplacementFailed = errors.New("replacement failed")
	// ErrBusy: the instance is already being replaced.
	ErrBusy = errors.New("instance is already being replaced")
)

// DefaultCheckInterval is the granularity of the readiness clocks: a child
// that fails one is found at most this long after its timeout, as the
// original checks once a second. The clocks are checked only when one may
// have run out, never more often than this.
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
	// Output receives the children's stdout and stderr lines, prefixed
	// "service.instance | " (nil = os.Stdout). Written by one goroutine.
	Output io.Writer
	// OutputBuffer bounds the bytes queued for Output; lines beyond it are
	// dropped and counted (0 = 1 MiB).
	OutputBuffer int
	// CheckInterval is the granularity of the readiness clocks (0 =
	// DefaultCheckInterval).
	CheckInterval time.Duration

	// Seams for tests and for the Controller.
	now    func() time.Time
	jitter func() float64
	sink   *lineSink
	stats  *statsRegistry
}

// Container runs the children of a set of services. Create it with
// NewContainer, then Start; it runs until Stop (or until its policy stops it:
// see Done and Err). Its methods are safe for concurrent use.
type Container struct {
	opts     Options
	logger   *slog.Logger
	policy   Policy
	services []*service
	sink     *lineSink
	ownSink  bool
	stats    *statsRegistry
	spawner  *spawner
	devnull  *os.File
	interval time.Duration

	mu        sync.Mutex
	started   bool
	stopping  bool
	err       error // why it stopped by itself
	startErr  error // first failure of an instance never ready
	live      int   // processes not yet reaped
	changed   chan struct{}
	allExited chan struct{} // closed when stopping and live == 0
	kill      chan struct{} // closed to skip the rest of graceful stops
	killOnce  sync.Once

	wg    sync.WaitGroup // every goroutine of the container but the finisher
	quit  chan struct{}  // stops the ticker
	rearm chan struct{}  // tells the ticker a clock started or changed
	done  chan struct{}  // closed when fully stopped
}

type service struct {
	spec      Spec
	stats     *serviceStats
	instances []*instance
}

type instance struct {
	svc         *service
	index       int
	cur         *proc   // the instance's process
	candidate   *proc   // its replacement, not yet ready (RestartChildren)
	retiring    []*proc // old processes being stopped
	restarts    int
	bo          backoff
	timer       *time.Timer
	nextRestart time.Time
	lastExit    *ExitStatus
	lastErr     string
	everReady   bool
}

type proc struct {
	inst         *instance
	pid          int
	pidfd        *os.File
	notifyR      *os.File
	outR         *os.File
	started      time.Time
	lastActivity time.Time
	ready        bool
	everReady    bool
	unhealthy    bool
	stopping     bool
	killed       string // why the container killed it, if it did
	status       string
	hasExited    bool
	exited       chan struct{} // closed once reaped

	sigMu  sync.RWMutex // held for writing while reaping
	reaped bool
}

func (p *proc) name() string { return fmt.Sprintf("%s.%d", p.inst.svc.spec.Name, p.inst.index) }

// NewContainer validates specs (errors wrap ErrInvalidSpec and name the
// service and field) and returns a container that has not started.
func NewContainer(specs []Spec, opts Options) (*Container, error) {
	if err := validateSpecs(specs); err != nil {
		return nil, err
	}
	c := &Container{
		opts:      opts,
		logger:    opts.Logger,
		policy:    opts.Policy,
		sink:      opts.sink,
		stats:     opts.stats,
		interval:  opts.CheckInterval,
		changed:   make(chan struct{}),
		allExited: make(chan struct{}),
		kill:      make(chan struct{}),
		quit:      make(chan struct{}),
		rearm:     make(chan struct{}, 1),
		done:      make(chan struct{}),
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
	if c.interval <= 0 {
		c.interval = DefaultCheckInterval
	}
	if c.opts.now == nil {
		c.opts.now = time.Now
	}
	if c.opts.jitter == nil {
		c.opts.jitter = rand.Float64
	}
	for _, s := range specs {
		s = s.withDefaults()
		svc := &service{spec: s, stats: c.stats.get(s.Name)}
		for i := range s.Count {
			svc.instances = append(svc.instances, &instance{svc: svc, index: i})
		}
		c.services = append(c.services, svc)
	}
	return c, nil
}

func (c *Container) now() time.Time { return c.opts.now() }

// signalLocked wakes everyone waiting for a change.
func (c *Container) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Start starts every instance of every service and returns; children that
// fail to start are retried with back-off and reported by WaitReady. Start
// may be called once; call Stop to release everything.
func (c *Container) Start() error {
	if !supported {
		return fmt.Errorf("start: %w", ErrUnsupported)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return errors.New("start: container already started")
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	c.started = true
	c.devnull = devnull
	if c.sink == nil {
		c.sink = newLineSink(c.opts.Output, c.opts.OutputBuffer)
		c.ownSink = true
	}
	c.spawner = newSpawner()
	go c.finisher()
	needTicker := false
	for _, svc := range c.services {
		if svc.spec.StartupTimeout > 0 || svc.spec.HealthCheckTimeout > 0 {
			needTicker = true
		}
		for _, inst := range svc.instances {
			if _, err := c.spawnLocked(inst, false, false); err != nil {
				c.spawnFailedLocked(inst, err)
			}
		}
	}
	if needTicker {
		c.wg.Add(1)
		go c.ticker()
	}
	c.signalLocked()
	return nil
}

// mergeEnv returns base with extra added, later entries replacing earlier
// ones of the same key.
func mergeEnv(base []string, extra ...string) []string {
	index := make(map[string]int, len(base)+len(extra))
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range append(base, extra...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// notInherited are variables of the controller's own environment that
// children do not inherit (they describe the controller's parent, not
// theirs); Spec.Env may still set them.
var notInherited = []string{"NOTIFY_PIPE", "NOTIFY_SOCKET", "NOTIFY_LOG", "WATCHDOG_USEC", "WATCHDOG_PID"}

// EnvService and EnvInstance tell each child its service's name and its
// instance number (from 0), so that it can say who it is, e.g. when it
// registers with the supervisor.
const (
	EnvService  = "VIGIL_SERVICE"
	EnvInstance = "VIGIL_INSTANCE"
)

func identityEnv(service string, index int) []string {
	return []string{EnvService + "=" + service, EnvInstance + "=" + strconv.Itoa(index)}
}

// childEnv is base without notInherited, plus extra, plus NOTIFY_PIPE=3.
func childEnv(base, extra []string) []string {
	kept := make([]string, 0, len(base))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(notInherited, k) {
			kept = append(kept, kv)
		}
	}
	return mergeEnv(kept, append(slices.Clone(extra), "NOTIFY_PIPE=3")...)
}

// forked is a process just started, not yet installed in an instance.
type forked struct {
	pid           int
	pidfd         *os.File
	notifyR, outR *os.File
}

// fork starts process number index of s on the spawner thread. It needs no
// lock of the container.
func (c *Container) fork(s Spec, index int) (forked, error) {
	path := s.Command[0]
	if !strings.Contains(path, "/") {
		lp, err := exec.LookPath(path)
		if err != nil {
			return forked{}, fmt.Errorf("service %q: command %q: %w", s.Name, path, err)
		}
		path = lp
	}
	notifyR, notifyW, err := notify.Pipe()
	if err != nil {
		return forked{}, fmt.Errorf("service %q: %w", s.Name, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		notifyR.Close()
		notifyW.Close()
		return forked{}, fmt.Errorf("service %q: output pipe: %w", s.Name, err)
	}
	rep := c.spawner.start(spawnRequest{
		path:  path,
		argv:  s.Command,
		env:   childEnv(os.Environ(), append(identityEnv(s.Name, index), s.Env...)),
		dir:   s.Dir,
		files: []uintptr{c.devnull.Fd(), outW.Fd(), outW.Fd(), notifyW.Fd()},
	})
	notifyW.Close()
	outW.Close()
	if rep.err != nil {
		notifyR.Close()
		outR.Close()
		return forked{}, fmt.Errorf("service %q: %w", s.Name, rep.err)
	}
	return forked{pid: rep.pid, pidfd: rep.pidfd, notifyR: notifyR, outR: outR}, nil
}

// spawnLocked starts a process for inst. As candidate it becomes
// inst.candidate (inst.cur, if any, keeps running until it is ready);
// otherwise inst.cur.
func (c *Container) spawnLocked(inst *instance, restart, candidate bool) (*proc, error) {
	f, err := c.fork(inst.svc.spec, inst.index)
	if err != nil {
		return nil, err
	}
	return c.installLocked(inst, f, restart, candidate), nil
}

// installLocked makes f a process of inst and starts watching it.
func (c *Container) installLocked(inst *instance, f forked, restart, candidate bool) *proc {
	s := inst.svc.spec
	now := c.now()
	p := &proc{
		inst: inst, pid: f.pid, pidfd: f.pidfd, notifyR: f.notifyR, outR: f.outR,
		started: now, lastActivity: now, exited: make(chan struct{}),
	}
	c.rearmClocksLocked() // its startup clock runs
	c.live++
	if candidate && inst.cur != nil {
		inst.candidate = p
	} else {
		inst.cur = p
	}
	if restart {
		inst.restarts++
	}
	inst.lastErr = ""
	inst.svc.stats.spawn(now, restart)
	c.logger.Debug("child started", "child", p.name(), "pid", p.pid)
	c.wg.Add(3)
	go c.watch(p)
	go c.readNotify(p)
	go c.readOutput(p)
	c.policy.ChildSpawn(c.infoLocked(inst, p, now))
	if s.Readiness == ReadyStarted {
		c.markReadyLocked(p)
	}
	c.signalLocked()
	return p
}

// spawnFailedLocked records a failure to start inst and schedules a retry.
func (c *Container) spawnFailedLocked(inst *instance, err error) {
	now := c.now()
	c.logger.Error("child failed to start", "service", inst.svc.spec.Name, "instance", inst.index, "error", err)
	inst.lastErr = err.Error()
	inst.svc.stats.failure(now)
	if !inst.everReady && c.startErr == nil {
		c.startErr = err
	}
	if inst.svc.spec.Restart {
		c.scheduleRestartLocked(inst, 0)
	}
	c.signalLocked()
}

// scheduleRestartLocked restarts inst after its back-off delay.
func (c *Container) scheduleRestartLocked(inst *instance, lifetime time.Duration) {
	if c.stopping {
		return
	}
	d := inst.bo.next(lifetime, inst.svc.spec, c.opts.jitter)
	if d <= 0 {
		c.restartLocked(inst)
		return
	}
	inst.nextRestart = c.now().Add(d)
	c.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer c.wg.Done()
		c.mu.Lock()
		defer c.mu.Unlock()
		if inst.timer != t || c.stopping {
			return
		}
		inst.timer = nil
		c.restartLocked(inst)
	})
	inst.timer = t
}

// cancelTimerLocked cancels inst's pending restart, if any.
func (c *Container) cancelTimerLocked(inst *instance) {
	if inst.timer != nil && inst.timer.Stop() {
		c.wg.Done()
	}
	inst.timer = nil
	inst.nextRestart = time.Time{}
}

func (c *Container) restartLocked(inst *instance) {
	inst.nextRestart = time.Time{}
	if c.stopping {
		return
	}
	if _, err := c.spawnLocked(inst, true, false); err != nil {
		c.spawnFailedLocked(inst, err)
	}
}

// watch waits for p to exit (in the poller, no thread blocked), kills what
// is left of its process group, reaps it and reports the exit.
func (c *Container) watch(p *proc) {
	defer c.wg.Done()
	if err := waitExit(p.pidfd); err != nil {
		c.logger.Warn("waiting for child through its pidfd failed; blocking a thread in waitid", "child", p.name(), "pid", p.pid, "error", err)
		// Without holding sigMu: the child is alive and may be signalled.
		if err := waitExitBlocking(p.pid); err != nil {
			c.logger.Error("waiting for child failed", "child", p.name(), "pid", p.pid, "error", err)
		}
	}
	p.sigMu.Lock()
	// The leader is a zombie until reaped, so its process group id cannot
	// have been reused: kill the rest of its group.
	_ = signalGroup(p.pid, syscall.SIGKILL)
	status, err := reap(p.pid)
	p.reaped = true
	p.sigMu.Unlock()
	p.pidfd.Close()
	if err != nil {
		c.logger.Error("reaping child failed", "child", p.name(), "pid", p.pid, "error", err)
	}
	deadline := time.Now().Add(outputGrace)
	_ = p.notifyR.SetReadDeadline(deadline)
	_ = p.outR.SetReadDeadline(deadline)
	c.onExit(p, status)
}

// signalProc sends sig to p's process group unless p has been reaped.
func (c *Container) signalProc(p *proc, sig syscall.Signal) {
	p.sigMu.RLock()
	defer p.sigMu.RUnlock()
	if !p.reaped {
		if err := signalGroup(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			c.logger.Warn("signal failed", "child", p.name(), "pid", p.pid, "signal", sig.String(), "error", err)
		}
	}
}

func (c *Container) onExit(p *proc, status ExitStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	inst := p.inst
	info := c.infoLocked(inst, p, now)
	p.hasExited = true
	close(p.exited)
	c.live--
	failed := !p.stopping && (!status.Success() || p.killed != "")
	if failed {
		inst.svc.stats.failure(now)
	}
	level := slog.LevelInfo
	if failed {
		level = slog.LevelWarn
	}
	attrs := []any{"child", p.name(), "pid", p.pid, "status", status.String()}
	if p.killed != "" {
		attrs = append(attrs, "killed", p.killed) // why the container killed it
	}
	c.logger.Log(context.Background(), level, "child exited", attrs...)
	action := c.policy.ChildExit(info, status)
	switch {
	case inst.candidate == p:
		inst.candidate = nil
	case inst.cur == p:
		inst.cur = nil
		inst.lastExit = &status
		if !inst.everReady && c.startErr == nil {
			reason := status.String()
			if p.killed != "" {
				reason = p.killed
			}
			c.startErr = fmt.Errorf("%s (pid %d) exited before it was ready: %s", p.name(), p.pid, reason)
		}
		if inst.candidate != nil {
			inst.cur, inst.candidate = inst.candidate, nil
		} else if inst.svc.spec.Restart && action != StopContainer {
			c.scheduleRestartLocked(inst, now.Sub(p.started))
		}
	default:
		for i, q := range inst.retiring {
			if q == p {
				inst.retiring = append(inst.retiring[:i], inst.retiring[i+1:]...)
				break
			}
		}
	}
	if action == StopContainer {
		c.stopByPolicyLocked()
	}
	if c.stopping && c.live == 0 {
		c.closeAllExitedLocked()
	}
	c.signalLocked()
}

func (c *Container) closeAllExitedLocked() {
	select {
	case <-c.allExited:
	default:
		close(c.allExited)
	}
}

func (c *Container) readNotify(p *proc) {
	defer c.wg.Done()
	defer p.notifyR.Close()
	r := notify.NewReader(p.notifyR, c.logger.With("child", p.name()))
	for {
		m, err := r.Next()
		if err != nil {
			return
		}
		c.onMessage(p, m)
	}
}

func (c *Container) readOutput(p *proc) {
	defer c.wg.Done()
	defer p.outR.Close()
	copyLines(p.outR, c.sink, p.name()+" | ", &p.inst.svc.stats.dropped, c.logger, p.name())
}

func (c *Container) onMessage(p *proc, m notify.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.hasExited {
		return
	}
	p.lastActivity = c.now()
	if m.Status != "" {
		p.status = m.Status
	}
	if m.Healthy {
		p.unhealthy = false
	}
	if m.Ready != nil {
		if *m.Ready {
			c.markReadyLocked(p)
		} else {
			p.ready = false
		}
		c.rearmClocksLocked() // the clock that applies changed
	}
	c.signalLocked()
}

// markReadyLocked marks p ready; a ready candidate replaces its instance's
// process, which is stopped gracefully.
func (c *Container) markReadyLocked(p *proc) {
	p.ready, p.everReady, p.unhealthy = true, true, false
	inst := p.inst
	inst.everReady = true
	if inst.candidate == p {
		old := inst.cur
		inst.cur, inst.candidate = p, nil
		if old != nil {
			inst.retiring = append(inst.retiring, old)
			c.stopProcLocked(old)
		}
	}
}

// stopProcLocked stops p gracefully in its own goroutine.
func (c *Container) stopProcLocked(p *proc) {
	if p.stopping || p.hasExited {
		return
	}
	p.stopping = true
	c.wg.Add(1)
	go c.escalate(p, p.inst.svc.spec.GracefulStop)
}

// escalate sends SIGINT, waits grace, SIGTERM, waits grace, then SIGKILL
// to p's process group, stopping as soon as p exits. Closing c.kill skips to
// SIGKILL.
func (c *Container) escalate(p *proc, grace time.Duration) {
	defer c.wg.Done()
	if grace > 0 {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			c.signalProc(p, sig)
			t := time.NewTimer(grace)
			select {
			case <-p.exited:
				t.Stop()
				return
			case <-c.kill:
				t.Stop()
			case <-t.C:
				continue
			}
			break
		}
	}
	c.signalProc(p, syscall.SIGKILL)
}

// ticker checks the readiness clocks when one may have run out: it sleeps
// until the earliest deadline (never less than the check interval), and
// not at all while no clock runs, so that an idle container whose children
// are all ready and have no health-check timeout never wakes.
func (c *Container) ticker() {
	defer c.wg.Done()
	t := time.NewTimer(c.nextCheck())
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-c.rearm:
		case <-t.C:
			c.checkClocks(c.now())
		}
		t.Reset(c.nextCheck())
	}
}

// idleCheck is how long the ticker sleeps while no clock runs; a new clock
// wakes it sooner.
const idleCheck = 24 * time.Hour

// rearmClocksLocked tells the ticker to compute its next check anew.
func (c *Container) rearmClocksLocked() {
	select {
	case c.rearm <- struct{}{}:
	default:
	}
}

// nextCheck is how long until the earliest readiness deadline has passed,
// and at least the check interval.
func (c *Container) nextCheck() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	next := idleCheck
	for _, svc := range c.services {
		s := svc.spec
		for _, inst := range svc.instances {
			for _, p := range []*proc{inst.cur, inst.candidate} {
				if p == nil || p.stopping || p.hasExited || p.killed != "" {
					continue
				}
				timeout := s.StartupTimeout
				if p.ready {
					timeout = s.HealthCheckTimeout
				}
				if timeout <= 0 {
					continue
				}
				// Just past the deadline: a clock runs out once it is exceeded.
				next = min(next, p.lastActivity.Add(timeout).Sub(now)+time.Millisecond)
			}
		}
	}
	return max(next, c.interval)
}

// checkClocks applies the readiness clocks at now.
func (c *Container) checkClocks(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return
	}
	for _, svc := range c.services {
		s := svc.spec
		if s.StartupTimeout <= 0 && s.HealthCheckTimeout <= 0 {
			continue
		}
		for _, inst := range svc.instances {
			for _, p := range []*proc{inst.cur, inst.candidate} {
				if p == nil || p.stopping || p.hasExited || p.killed != "" {
					continue
				}
				timeout, what := s.StartupTimeout, "startup timeout"
				if p.ready {
					timeout, what = s.HealthCheckTimeout, "health check timeout"
				}
				if timeout <= 0 || now.Sub(p.lastActivity) <= timeout {
					continue
				}
				p.lastActivity = now
				info := c.infoLocked(inst, p, now)
				var action Action
				if p.ready {
					p.unhealthy = true
					action = c.policy.HealthCheckFailed(info)
				} else {
					action = c.policy.StartupFailed(info)
				}
				c.logger.Warn("child failed its "+what, "child", p.name(), "pid", p.pid, "timeout", timeout, "action", action)
				switch action {
				case Kill:
					p.killed = what
					c.signalProc(p, syscall.SIGKILL)
				case StopContainer:
					p.killed = what
					c.stopByPolicyLocked()
				}
				c.signalLocked()
			}
		}
	}
}

func (c *Container) stopByPolicyLocked() {
	if c.stopping {
		return
	}
	c.err = ErrStoppedByPolicy
	c.logger.Warn("policy stops the container")
	c.beginStopLocked()
}

// beginStopLocked stops every process gracefully and cancels restarts.
func (c *Container) beginStopLocked() {
	if c.stopping {
		return
	}
	c.stopping = true
	for _, svc := range c.services {
		for _, inst := range svc.instances {
			c.cancelTimerLocked(inst)
			for _, p := range append([]*proc{inst.cur, inst.candidate}, inst.retiring...) {
				if p != nil {
					c.stopProcLocked(p)
				}
			}
		}
	}
	if c.live == 0 {
		c.closeAllExitedLocked()
	}
	c.signalLocked()
}

// finisher releases the container once it is stopping and every child has
// been reaped.
func (c *Container) finisher() {
	<-c.allExited
	close(c.quit)
	c.wg.Wait()
	c.spawner.stop()
	c.devnull.Close()
	if c.ownSink {
		c.sink.close()
	}
	close(c.done)
}

// Stop stops every child gracefully (see Spec.GracefulStop) and waits until
// every child has been reaped and every goroutine of the container has
// ended. When ctx ends first, the children left are killed with SIGKILL, Stop
// still waits for them, and returns ctx's error. Stop may be called more
// than once and on a container never started.
func (c *Container) Stop(ctx context.Context) error {
	c.mu.Lock()
	if !c.started {
		c.started = true
		c.stopping = true
		close(c.done)
		c.mu.Unlock()
		return nil
	}
	c.beginStopLocked()
	c.mu.Unlock()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.killOnce.Do(func() { close(c.kill) })
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
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// WaitReady waits until every instance has been ready at least once. It
// returns an error wrapping ErrNotReady as soon as an instance that was
// never ready fails (exits, fails its startup clock, cannot be started);
// ErrStopped if the container stops; ctx's error when ctx ends.
func (c *Container) WaitReady(ctx context.Context) error {
	for {
		c.mu.Lock()
		all := true
		for _, svc := range c.services {
			for _, inst := range svc.instances {
				all = all && inst.everReady
			}
		}
		startErr, stopping, ch := c.startErr, c.stopping, c.changed
		c.mu.Unlock()
		switch {
		case all:
			return nil
		case startErr != nil:
			return fmt.Errorf("%w: %w", ErrNotReady, startErr)
		case stopping:
			return ErrStopped
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait until ready: %w", ctx.Err())
		case <-ch:
		}
	}
}

// infoLocked describes inst with its process p (nil: the instance itself).
func (c *Container) infoLocked(inst *instance, p *proc, now time.Time) ChildInfo {
	ci := ChildInfo{
		Service: inst.svc.spec.Name, Instance: inst.index, Restarts: inst.restarts,
		LastExit: inst.lastExit, LastError: inst.lastErr,
	}
	if p == nil {
		if inst.timer != nil {
			ci.State, ci.NextRestart = StateBackingOff, inst.nextRestart
		} else {
			ci.State = StateExited
		}
		return ci
	}
	ci.PID, ci.Started, ci.Uptime, ci.Status = p.pid, p.started, now.Sub(p.started), p.status
	switch {
	case p.stopping:
		ci.State = StateStopping
	case p.unhealthy:
		ci.State = StateUnhealthy
	case p.ready:
		ci.State = StateReady
	default:
		ci.State = StateStarting
	}
	return ci
}

// Children describes every child, by service (in spec order) and instance.
func (c *Container) Children() []ChildInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var out []ChildInfo
	for _, svc := range c.services {
		for _, inst := range svc.instances {
			out = append(out, c.infoLocked(inst, inst.cur, now))
			if inst.candidate != nil {
				out = append(out, c.infoLocked(inst, inst.candidate, now))
			}
			for _, p := range inst.retiring {
				out = append(out, c.infoLocked(inst, p, now))
			}
		}
	}
	return out
}

// Specs returns the container's specs, defaults filled in.
func (c *Container) Specs() []Spec {
	out := make([]Spec, len(c.services))
	for i, svc := range c.services {
		out[i] = svc.spec
	}
	return out
}

// Statistics returns each service's statistics, in spec order.
func (c *Container) Statistics() []Statistics {
	now := c.now()
	out := make([]Statistics, len(c.services))
	for i, svc := range c.services {
		out[i] = svc.stats.snapshot(svc.spec.Name, now)
	}
	return out
}

// RestartChildren restarts the instances of service (instance -1: all, one
// after the other; otherwise that one). For each, a replacement is started
// beside the running process; once the replacement is ready the old process
// is stopped gracefully, so the service never loses its last ready worker.
// An instance with no running process is simply started. If a replacement
// exits before it is ready the old process keeps running and the error
// wraps ErrReplacementFailed; if ctx ends, the replacement being waited for
// is stopped.
func (c *Container) RestartChildren(ctx context.Context, svcName string, instance int) error {
	c.mu.Lock()
	var svc *service
	for _, s := range c.services {
		if s.spec.Name == svcName {
			svc = s
		}
	}
	if svc == nil {
		c.mu.Unlock()
		return fmt.Errorf("restart %q: %w", svcName, ErrUnknownService)
	}
	targets := svc.instances
	if instance >= 0 {
		if instance >= len(svc.instances) {
			c.mu.Unlock()
			return fmt.Errorf("restart %s.%d: service has %d instances: %w", svcName, instance, len(svc.instances), ErrUnknownInstance)
		}
		targets = svc.instances[instance : instance+1]
	} else if instance != -1 {
		c.mu.Unlock()
		return fmt.Errorf("restart %s.%d: %w", svcName, instance, ErrUnknownInstance)
	}
	c.mu.Unlock()
	for _, inst := range targets {
		if err := c.replace(ctx, inst); err != nil {
			return fmt.Errorf("restart %s.%d: %w", svcName, inst.index, err)
		}
	}
	return nil
}

func (c *Container) replace(ctx context.Context, inst *instance) error {
	c.mu.Lock()
	if !c.started || c.stopping {
		c.mu.Unlock()
		return ErrStopped
	}
	if inst.candidate != nil {
		c.mu.Unlock()
		return ErrBusy
	}
	c.cancelTimerLocked(inst)
	p, err := c.spawnLocked(inst, true, true)
	if err != nil {
		c.spawnFailedLocked(inst, err)
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	for {
		c.mu.Lock()
		ok := p.ready && inst.cur == p
		exited, stopping, ch := p.hasExited, c.stopping, c.changed
		c.mu.Unlock()
		switch {
		case ok:
			return nil
		case exited:
			return fmt.Errorf("pid %d: %w", p.pid, ErrReplacementFailed)
		case stopping:
			return ErrStopped
		}
		select {
		case <-ctx.Done():
			c.mu.Lock()
			if inst.candidate == p {
				c.stopProcLocked(p)
			}
			c.mu.Unlock()
			return ctx.Err()
		case <-ch:
		}
	}
}
