package monitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vigild/vigil/procmetrics"
	"github.com/vigild/vigil/supervisor"
)

// Reasons for stopping a process, as logged and counted in status "kills".
const (
	ReasonMaximumSize = "maximum_size_limit" // private size above the limit
	ReasonIncrease    = "increase_limit"     // a leak: too many increases
	ReasonTotalSize   = "total_size_limit"   // the workers together too large
	ReasonFreeSize    = "free_size_minimum"  // the host short of free memory
)

// Defaults of [MemoryOptions].
const (
	DefaultMemoryInterval = 10 * time.Second
	DefaultPollInterval   = time.Second
	DefaultThresholdSize  = 10 << 20 // 10 MiB
	DefaultGracefulStop   = 10 * time.Second
	DefaultSampleDuration = time.Second
)

// ErrOptions is wrapped by the error of [MemoryOptions.Validate] and
// [ProcessOptions.Validate] (and so of Run) for options that make no sense.
var ErrOptions = errors.New("monitor: invalid options")

// MemoryOptions configures [NewMemory]. The zero value is a monitor with
// every limit off that only measures. Sizes are bytes.
type MemoryOptions struct {
	// Interval is the period of the full check, which reads every worker's
	// private memory, counts samples and judges leaks (default 10s).
	Interval time.Duration
	// MaximumSizeLimit is the largest private size a worker may have
	// (0: no limit).
	MaximumSizeLimit uint64
	// TotalSizeLimit bounds max(shared) + sum(private) over the workers
	// (0: no limit). While over it, the largest private workers are stopped
	// first.
	TotalSizeLimit uint64
	// FreeSizeMinimum is the free memory the host (or the supervisor's
	// memory cgroup, when it has a limit) must keep (0: no minimum). While
	// below it, the largest private workers are stopped first, until the
	// memory they free brings the estimate back above it.
	FreeSizeMinimum uint64
	// IncreaseLimit is the number of increases of a worker's private size by
	// more than ThresholdSize above the largest size seen (at full checks)
	// after which it is stopped as leaking (0: off).
	IncreaseLimit int
	// ThresholdSize is the increase that counts for IncreaseLimit (default
	// 10 MiB).
	ThresholdSize uint64
	// MemorySample, when set, asks a worker for a memory sample before it
	// is stopped, and writes it under DumpDirectory.
	MemorySample *SampleOptions
	// DumpDirectory receives the samples (default os.TempDir()); it is
	// created (0700) if missing. Each sample is a new file of mode 0600.
	DumpDirectory string
	// Services sets limits for the workers of a service (the "name" they
	// registered with); a zero field inherits the option above.
	Services map[string]ServiceLimits
	// GracefulStop is the time a worker has to exit after SIGINT before it
	// gets SIGKILL (default 10s).
	GracefulStop time.Duration
	// PollInterval is the period of the cheap poll of every worker's
	// resident size (default 1s, at most Interval). A worker whose resident
	// size reaches its MaximumSizeLimit has its private size read at once;
	// one close to it is polled ten times as often.
	PollInterval time.Duration
	// Logger receives the monitor's events; nil discards them.
	Logger *slog.Logger

	// Seams for tests: nil means the real /proc, wall clock and signals.
	source memorySource
	host   func() (procmetrics.HostMemory, error)
	clock  clock
	stop   stopFunc
}

// SampleOptions configures the memory sample taken before a stop.
type SampleOptions struct {
	// Duration is the sampling window asked of the worker (default 1s: the
	// worker may be growing fast while it is sampled).
	Duration time.Duration
	// Timeout bounds the whole request (default Duration + 10s); the
	// worker is stopped anyway when it passes.
	Timeout time.Duration
}

// ServiceLimits are the limits of one service's workers; zero fields
// inherit [MemoryOptions]'.
type ServiceLimits struct {
	MaximumSizeLimit uint64        // bytes of private memory; 0: inherit
	IncreaseLimit    int           // increases before a leak stop; 0: inherit
	ThresholdSize    uint64        // bytes an increase must exceed; 0: inherit
	GracefulStop     time.Duration // time from SIGINT to SIGKILL; 0: inherit
}

// Validate reports options that make no sense, naming them.
func (o MemoryOptions) Validate() error {
	durations := []struct {
		name string
		d    time.Duration
	}{{"interval", o.Interval}, {"poll_interval", o.PollInterval}, {"graceful_stop", o.GracefulStop}}
	if o.MemorySample != nil {
		durations = append(durations,
			struct {
				name string
				d    time.Duration
			}{"memory_sample.duration", o.MemorySample.Duration},
			struct {
				name string
				d    time.Duration
			}{"memory_sample.timeout", o.MemorySample.Timeout})
	}
	for _, d := range durations {
		if d.d < 0 {
			return fmt.Errorf("%w: memory monitor %s is negative (%v)", ErrOptions, d.name, d.d)
		}
	}
	if o.IncreaseLimit < 0 {
		return fmt.Errorf("%w: memory monitor increase_limit is negative (%d)", ErrOptions, o.IncreaseLimit)
	}
	for name, s := range o.Services {
		if s.IncreaseLimit < 0 {
			return fmt.Errorf("%w: memory monitor service %q: increase_limit is negative (%d)", ErrOptions, name, s.IncreaseLimit)
		}
		if s.GracefulStop < 0 {
			return fmt.Errorf("%w: memory monitor service %q: graceful_stop is negative (%v)", ErrOptions, name, s.GracefulStop)
		}
	}
	return nil
}

// memorySource reads processes' memory: procSource, or a fake.
type memorySource interface {
	Resident(pid int) (uint64, error)
	Figures(pid int) (figures, error)
	HostMemory() (procmetrics.HostMemory, error)
	// Forget releases what is kept for a process no longer tracked; Close,
	// what is kept for all, when the loop ends.
	Forget(pid int)
	Close()
}

// limits are the effective limits of one worker.
type limits struct {
	maximum   uint64
	increase  int
	threshold uint64
	grace     time.Duration
}

// tracked is one worker process, tracked while any of its connections is
// registered.
type tracked struct {
	pid     int
	conns   []*supervisor.Connection
	service string
	limits  limits

	resident     uint64 // from the last poll
	pollResident uint64 // at the previous full poll, for the growth rate
	hasResident  bool
	hot          bool // close to its limit: polled more often

	sampleCount   int
	hasPrivate    bool
	shared        uint64
	private       uint64
	hasMaximum    bool
	maximum       uint64 // largest private size seen, for leaks
	increaseCount int
	stopping      bool
}

// Memory is the memory monitor. Make it with [NewMemory]; it is a
// [supervisor.Monitor].
type Memory struct {
	opts     MemoryOptions
	logger   *slog.Logger
	source   memorySource
	host     func() (procmetrics.HostMemory, error)
	clock    clock
	stop     stopFunc
	hotEvery time.Duration
	invalid  error // from Validate, returned by Run

	stops sync.WaitGroup // the stop goroutines, owned by Run

	mu       sync.Mutex
	procs    map[int]*tracked
	kills    map[string]int
	counts   map[string]*ServiceCounts // by service
	total    uint64
	hasTotal bool
	free     uint64
	hasFree  bool
}

// NewMemory returns a memory monitor with opts (defaults filled in). Bad
// options are reported by Run; see [MemoryOptions.Validate].
func NewMemory(opts MemoryOptions) *Memory {
	invalid := opts.Validate()
	if opts.Interval <= 0 {
		opts.Interval = DefaultMemoryInterval
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	opts.PollInterval = min(opts.PollInterval, opts.Interval)
	if opts.ThresholdSize == 0 {
		opts.ThresholdSize = DefaultThresholdSize
	}
	if opts.GracefulStop <= 0 {
		opts.GracefulStop = DefaultGracefulStop
	}
	if s := opts.MemorySample; s != nil {
		c := *s
		if c.Duration <= 0 {
			c.Duration = DefaultSampleDuration
		}
		if c.Timeout <= 0 {
			c.Timeout = c.Duration + 10*time.Second
		}
		opts.MemorySample = &c
	}
	m := &Memory{
		opts:     opts,
		logger:   opts.Logger,
		source:   opts.source,
		host:     opts.host,
		clock:    opts.clock,
		stop:     opts.stop,
		hotEvery: max(opts.PollInterval/10, 10*time.Millisecond),
		invalid:  invalid,
		procs:    make(map[int]*tracked),
		kills:    make(map[string]int),
		counts:   make(map[string]*ServiceCounts),
	}
	if m.logger == nil {
		m.logger = slog.New(slog.DiscardHandler)
	}
	if m.source == nil {
		m.source = newProcSource(procmetrics.DefaultFS())
	}
	if m.host == nil {
		m.host = m.source.HostMemory
	}
	if m.clock == nil {
		m.clock = realClock{}
	}
	if m.stop == nil {
		m.stop = stopProcess
	}
	return m
}

// limitsFor returns the effective limits of a service's workers.
func (m *Memory) limitsFor(service string) limits {
	l := limits{
		maximum:   m.opts.MaximumSizeLimit,
		increase:  m.opts.IncreaseLimit,
		threshold: m.opts.ThresholdSize,
		grace:     m.opts.GracefulStop,
	}
	if s, ok := m.opts.Services[service]; ok {
		if s.MaximumSizeLimit > 0 {
			l.maximum = s.MaximumSizeLimit
		}
		if s.IncreaseLimit > 0 {
			l.increase = s.IncreaseLimit
		}
		if s.ThresholdSize > 0 {
			l.threshold = s.ThresholdSize
		}
		if s.GracefulStop > 0 {
			l.grace = s.GracefulStop
		}
	}
	return l
}

// Register starts tracking the connection's process (several connections
// may share one). Connections without a process id, the controller's,
// unverified ones (see [supervisor.Connection.Verified]), and those naming
// pid 1 or the supervisor itself are ignored.
func (m *Memory) Register(conn *supervisor.Connection) {
	pid := conn.ProcessID()
	if pid <= 0 || conn.Role() == "controller" {
		return
	}
	if pid == 1 || pid == os.Getpid() {
		m.logger.Warn("memory monitor: not tracking a registration naming init or the supervisor itself",
			"process_id", pid, "connection_id", conn.ID())
		return
	}
	// Only a verified registration puts its process under the monitor: the
	// server knows who registered it, and that it may name that process
	// (its own, a descendant, or any for root). Otherwise any client of the
	// socket, one outside the supervisor's pid namespace included, could
	// name another's process for the supervisor to kill.
	if !conn.Verified() {
		m.logger.Warn("memory monitor: not tracking an unverified registration (its peer's pid is unknown)",
			"process_id", pid, "peer_uid", conn.Peer().UID, "connection_id", conn.ID())
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.procs[pid]
	if t == nil {
		t = &tracked{pid: pid}
		m.procs[pid] = t
	}
	t.conns = append(t.conns, conn)
	if s := conn.Service(); s != "" || t.service == "" {
		t.service = s
		t.limits = m.limitsFor(s)
	}
}

// Remove forgets a connection; the process is forgotten at the next check
// once none of its connections is left (a re-registration keeps its
// history).
func (m *Memory) Remove(conn *supervisor.Connection) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.procs[conn.ProcessID()]; t != nil {
		t.conns = slices.DeleteFunc(t.conns, func(c *supervisor.Connection) bool { return c == conn })
	}
}

// Run checks the workers until ctx ends: a poll of resident sizes every
// PollInterval (more often for workers close to their limit) and a full
// check every Interval, at aligned times. It returns once the stops it
// started have ended; an invalid option is an error at once.
func (m *Memory) Run(ctx context.Context) error {
	if m.invalid != nil {
		return m.invalid
	}
	defer m.source.Close()
	defer m.stops.Wait()
	nextFull := nextAligned(m.clock.Now(), m.opts.Interval)
	for {
		now := m.clock.Now()
		pollAt := nextAligned(now, m.opts.PollInterval)
		wake := pollAt
		if m.anyHot() {
			wake = earliest(wake, nextAligned(now, m.hotEvery))
		}
		wake = earliest(wake, nextFull)
		if err := m.clock.SleepUntil(ctx, wake); err != nil {
			return nil
		}
		k := checkHot
		if !wake.Before(pollAt) {
			k = checkPoll
		}
		if !wake.Before(nextFull) {
			k = checkFull
			nextFull = nextAligned(wake, m.opts.Interval)
		}
		if err := safeRun(ctx, func(ctx context.Context) error { return m.check(ctx, k) }); err != nil && ctx.Err() == nil {
			m.logger.Error("memory monitor check failed", "error", err)
		}
	}
}

func (m *Memory) anyHot() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.procs {
		if t.hot && !t.stopping {
			return true
		}
	}
	return false
}

// checkKind is what one wake of the loop does.
type checkKind int

const (
	checkHot  checkKind = iota // resident of the workers close to a limit
	checkPoll                  // resident of every worker, host memory
	checkFull                  // private of every worker, samples, leaks
)

// reading is the figures read for one worker in one check, outside the lock.
type reading struct {
	pid      int
	limits   limits
	stopping bool
	resident uint64
	hasRes   bool
	gone     bool
	mem      figures
	hasMem   bool
	shared   uint64 // at the last private reading
}

// stopOrder is a decision to stop a worker.
type stopOrder struct {
	pid     int
	service string
	conn    *supervisor.Connection
	reason  string
	grace   time.Duration
	attrs   []any
}

// check runs one wake of the loop: it reads what it needs without the
// lock, then judges under it and starts the stops it decided.
func (m *Memory) check(ctx context.Context, kind checkKind) error {
	// Forget processes without connections; list what to read.
	m.mu.Lock()
	rs := make([]reading, 0, len(m.procs))
	for pid, t := range m.procs {
		if len(t.conns) == 0 {
			delete(m.procs, pid)
			m.source.Forget(pid)
			continue
		}
		if kind == checkHot && (!t.hot || t.stopping) {
			continue
		}
		rs = append(rs, reading{pid: pid, limits: t.limits, stopping: t.stopping, shared: t.shared})
	}
	m.mu.Unlock()

	var errs []error
	// An estimate of the total from the resident sizes and the last shared
	// sizes: resident = shared + private, so the total is
	// sum(resident - shared) + max(shared) while the shared sizes hold.
	var sumResident, sumShared, maxShared uint64
	for i := range rs {
		r := &rs[i]
		res, err := m.source.Resident(r.pid)
		switch {
		case errors.Is(err, procmetrics.ErrNotFound):
			r.gone = true
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		r.resident, r.hasRes = res, true
		if !r.stopping {
			sumResident += res
			sumShared += min(r.shared, res)
			maxShared = max(maxShared, min(r.shared, res))
		}
	}

	// What needs the private sizes of every worker.
	all := kind == checkFull
	var host procmetrics.HostMemory
	hostRead := false
	if kind != checkHot {
		if m.opts.TotalSizeLimit > 0 && sumResident-sumShared+maxShared > m.opts.TotalSizeLimit {
			all = true // may be over the limit: read the private sizes
		}
		if m.opts.FreeSizeMinimum > 0 {
			h, err := m.host()
			if err != nil {
				errs = append(errs, fmt.Errorf("host memory: %w", err))
			} else {
				host, hostRead = h, true
				if h.Free < m.opts.FreeSizeMinimum {
					all = true
				}
			}
		}
	}
	for i := range rs {
		r := &rs[i]
		if r.gone || !r.hasRes {
			continue
		}
		if !all && (r.limits.maximum == 0 || r.resident < r.limits.maximum) {
			continue
		}
		mem, err := m.source.Figures(r.pid)
		switch {
		case errors.Is(err, procmetrics.ErrNotFound):
			r.gone = true
		case err != nil:
			errs = append(errs, err)
		default:
			r.mem, r.hasMem = mem, true
		}
	}

	orders := m.judge(kind, rs, all, host, hostRead)
	for _, o := range orders {
		m.stops.Go(func() { m.stopWorker(ctx, o) })
	}
	return errors.Join(errs...)
}

// judge updates the figures with the readings and decides the stops.
func (m *Memory) judge(kind checkKind, rs []reading, all bool, host procmetrics.HostMemory, hostRead bool) []stopOrder {
	m.mu.Lock()
	defer m.mu.Unlock()
	var orders []stopOrder
	order := func(t *tracked, reason string, attrs ...any) {
		t.stopping = true
		m.kills[reason]++
		m.serviceCounts(t.service).Kills[reason]++
		o := stopOrder{pid: t.pid, service: t.service, reason: reason, grace: t.limits.grace}
		if len(t.conns) > 0 {
			o.conn = t.conns[len(t.conns)-1]
		}
		o.attrs = append([]any{"reason", reason, "process_id", t.pid, "service", t.service,
			"private_size", t.private, "shared_size", t.shared, "resident_size", t.resident}, attrs...)
		orders = append(orders, o)
	}

	complete := all // every live worker has a fresh private reading
	for _, r := range rs {
		t := m.procs[r.pid]
		if t == nil || r.gone {
			continue
		}
		if r.hasRes {
			t.resident = r.resident
			if kind != checkHot {
				// Hot: close enough to the limit to reach it before the
				// next poll at the rate it grew since the previous one.
				l := t.limits.maximum
				growth := uint64(0)
				if t.hasResident && r.resident > t.pollResident {
					growth = r.resident - t.pollResident
				}
				t.hot = l > 0 && (r.resident >= l-l/10 || r.resident+2*growth >= l)
				t.pollResident, t.hasResident = r.resident, true
			}
		}
		if !r.hasMem {
			if !t.stopping {
				complete = false
			}
			continue
		}
		t.shared, t.private, t.hasPrivate = r.mem.shared, r.mem.private, true
		if kind == checkFull {
			t.sampleCount++
			switch {
			case !t.hasMaximum:
				t.maximum, t.hasMaximum = t.private, true
			case t.private > t.maximum+t.limits.threshold:
				t.maximum = t.private
				t.increaseCount++
				m.serviceCounts(t.service).Increases++
			}
		}
		if t.stopping {
			continue
		}
		if l := t.limits.maximum; l > 0 && t.private > l {
			order(t, ReasonMaximumSize, "maximum_size_limit", l)
		} else if l := t.limits.increase; kind == checkFull && l > 0 && t.increaseCount >= l {
			order(t, ReasonIncrease, "increase_count", t.increaseCount, "increase_limit", l,
				"maximum_size", t.maximum, "threshold_size", t.limits.threshold)
		}
	}
	if hostRead {
		m.free, m.hasFree = host.Free, true
	}
	if !complete {
		return orders
	}

	// The cluster: total = max(shared) + sum(private) of the workers not
	// being stopped; what those being stopped hold is about to be freed.
	var live []*tracked
	var maxShared, sumPrivate, freeing uint64
	for _, t := range m.procs {
		if len(t.conns) == 0 || !t.hasPrivate {
			continue
		}
		if t.stopping {
			freeing += t.private
			continue
		}
		live = append(live, t)
		maxShared = max(maxShared, t.shared)
		sumPrivate += t.private
	}
	total := maxShared + sumPrivate
	m.total, m.hasTotal = total, true
	slices.SortFunc(live, func(a, b *tracked) int {
		return cmp.Or(cmp.Compare(b.private, a.private), cmp.Compare(a.pid, b.pid))
	})
	if l := m.opts.TotalSizeLimit; l > 0 && total > l {
		for _, t := range live {
			if total <= l {
				break
			}
			order(t, ReasonTotalSize, "total_size", total, "total_size_limit", l)
			total -= t.private
			freeing += t.private
		}
	}
	if l := m.opts.FreeSizeMinimum; l > 0 && hostRead && host.Free < l {
		estimate := host.Free + freeing
		for _, t := range live {
			if estimate >= l {
				break
			}
			if t.stopping {
				continue
			}
			order(t, ReasonFreeSize, "free_size", host.Free, "free_size_estimate", estimate,
				"free_size_minimum", l, "memory_source", host.Source)
			estimate += t.private
		}
	}
	return orders
}

// stopWorker samples (when configured) and stops one worker.
func (m *Memory) stopWorker(ctx context.Context, o stopOrder) {
	m.logger.Warn("memory monitor: stopping process", o.attrs...)
	if m.opts.MemorySample != nil && o.conn != nil {
		m.sampleWorker(ctx, o)
	}
	if ctx.Err() != nil {
		m.logger.Warn("memory monitor: stop abandoned: monitor stopping", "process_id", o.pid, "reason", o.reason)
		return
	}
	outcome, err := m.stop(ctx, o.pid, o.grace)
	if err != nil {
		m.logger.Error("memory monitor: stopping process failed; it will be judged again", "process_id", o.pid, "reason", o.reason, "error", err)
		m.mu.Lock()
		if t := m.procs[o.pid]; t != nil {
			t.stopping = false
		}
		m.mu.Unlock()
		return
	}
	m.logger.Info("memory monitor: process stopped", "process_id", o.pid, "service", o.service,
		"reason", o.reason, "outcome", outcome.String())
}

// Name returns "memory_monitor", the key of its status.
func (m *Memory) Name() string { return "memory_monitor" }

// Status returns {"memory_monitor": MemoryStatus}.
func (m *Memory) Status(ctx context.Context) (any, error) {
	return map[string]MemoryStatus{"memory_monitor": m.Snapshot()}, nil
}

// MemoryStatus is the memory monitor's status, in the original's shape with
// added fields (free_size, kills).
type MemoryStatus struct {
	// TotalSize is max(shared) + sum(private) at the last reading of every
	// worker's private size (null before one).
	TotalSize       *uint64 `json:"total_size"`
	TotalSizeLimit  *uint64 `json:"total_size_limit"`  // bytes; null: no limit
	FreeSizeMinimum *uint64 `json:"free_size_minimum"` // bytes; null: no minimum
	// FreeSize is the host's (or cgroup's) free memory at the last poll,
	// when FreeSizeMinimum is set.
	FreeSize *uint64 `json:"free_size,omitempty"`
	// Processes are the tracked workers by process id.
	Processes map[string]ProcessMemory `json:"processes"`
	// Kills counts the stops by reason.
	Kills map[string]int `json:"kills"`
}

// ProcessMemory is one worker's figures in [MemoryStatus]: null until read.
type ProcessMemory struct {
	ProcessID   int `json:"process_id"`   // the worker's pid
	SampleCount int `json:"sample_count"` // full checks that read its private size
	// CurrentSize is shared + private at the last private reading.
	CurrentSize        *uint64 `json:"current_size"`
	CurrentSharedSize  *uint64 `json:"current_shared_size"`  // shared bytes at the last private reading
	CurrentPrivateSize *uint64 `json:"current_private_size"` // private bytes at the last private reading
	// MaximumSize is the largest private size counted for leaks.
	MaximumSize      *uint64 `json:"maximum_size"`
	MaximumSizeLimit *uint64 `json:"maximum_size_limit"` // bytes of private size; null: no limit
	ThresholdSize    uint64  `json:"threshold_size"`     // bytes above MaximumSize that count as an increase
	IncreaseCount    int     `json:"increase_count"`     // increases counted so far
	IncreaseLimit    *int    `json:"increase_limit"`     // increases before a leak stop; null: off
	// ResidentSize is the resident size at the last poll.
	ResidentSize *uint64 `json:"resident_size"`
	// Service is the "name" the worker registered with.
	Service string `json:"service,omitempty"`
	// Stopping is set once the monitor decided to stop the worker.
	Stopping bool `json:"stopping,omitempty"`
}

func ptr[T any](v T) *T { return &v }

func nonZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

// Snapshot returns the monitor's status.
func (m *Memory) Snapshot() MemoryStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := MemoryStatus{
		TotalSizeLimit:  nonZero(m.opts.TotalSizeLimit),
		FreeSizeMinimum: nonZero(m.opts.FreeSizeMinimum),
		Processes:       make(map[string]ProcessMemory, len(m.procs)),
		Kills:           make(map[string]int, len(m.kills)),
	}
	if m.hasTotal {
		s.TotalSize = ptr(m.total)
	}
	if m.hasFree {
		s.FreeSize = ptr(m.free)
	}
	for k, v := range m.kills {
		s.Kills[k] = v
	}
	for pid, t := range m.procs {
		if len(t.conns) == 0 {
			continue
		}
		p := ProcessMemory{
			ProcessID:        pid,
			SampleCount:      t.sampleCount,
			MaximumSizeLimit: nonZero(t.limits.maximum),
			ThresholdSize:    t.limits.threshold,
			IncreaseCount:    t.increaseCount,
			IncreaseLimit:    nonZero(t.limits.increase),
			Service:          t.service,
			Stopping:         t.stopping,
		}
		if t.hasPrivate {
			p.CurrentSize = ptr(t.shared + t.private)
			p.CurrentSharedSize = ptr(t.shared)
			p.CurrentPrivateSize = ptr(t.private)
		}
		if t.hasMaximum {
			p.MaximumSize = ptr(t.maximum)
		}
		if t.hasResident {
			p.ResidentSize = ptr(t.resident)
		}
		s.Processes[strconv.Itoa(pid)] = p
	}
	return s
}

// ServiceCounts are what the memory monitor did to one service's workers
// since it started.
type ServiceCounts struct {
	// Kills count the workers stopped, by reason (ReasonMaximumSize, ...).
	Kills map[string]int
	// Increases count the rises of a worker's private size by more than
	// its threshold above the largest seen: the leak detector's evidence,
	// IncreaseLimit of which stop a worker.
	Increases int
}

// serviceCounts returns a service's counts, made if new; m.mu is held.
func (m *Memory) serviceCounts(service string) *ServiceCounts {
	c := m.counts[service]
	if c == nil {
		c = &ServiceCounts{Kills: make(map[string]int)}
		m.counts[service] = c
	}
	return c
}

// Counts returns the counts of each service ("" for workers that
// registered no name) whose workers the monitor stopped or saw grow.
func (m *Memory) Counts() map[string]ServiceCounts {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]ServiceCounts, len(m.counts))
	for name, c := range m.counts {
		kills := make(map[string]int, len(c.Kills))
		for r, n := range c.Kills {
			kills[r] = n
		}
		out[name] = ServiceCounts{Kills: kills, Increases: c.Increases}
	}
	return out
}
