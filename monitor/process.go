package monitor

import (
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

// DefaultProcessInterval is the default period of the process monitor.
const DefaultProcessInterval = 60 * time.Second

// ErrInitPPID is wrapped by the process monitor's error when its ppid would
// be pid 1 (the supervisor runs without a controller, or was given 1): the
// tree under it is the whole machine.
var ErrInitPPID = errors.New("monitor: process monitor ppid is 1 (init): it would report the whole machine")

// ProcessOptions configures [NewProcess]. The zero value captures the tree
// under the supervisor's parent every minute.
type ProcessOptions struct {
	// Interval is the period of the captures (default 60s).
	Interval time.Duration
	// PPID is the root of the captured tree (0: the supervisor's parent,
	// the controller). It may not be 1.
	PPID int
	// Logger receives one entry per process per capture; nil discards.
	Logger *slog.Logger

	// Seam for tests.
	clock clock
}

// Validate reports options that make no sense, naming them.
func (o ProcessOptions) Validate() error {
	if o.Interval < 0 {
		return fmt.Errorf("%w: process monitor interval is negative (%v)", ErrOptions, o.Interval)
	}
	if o.PPID < 0 {
		return fmt.Errorf("%w: process monitor ppid is negative (%d)", ErrOptions, o.PPID)
	}
	if o.PPID == 1 {
		return fmt.Errorf("%w: %w", ErrOptions, ErrInitPPID)
	}
	return nil
}

// Process is the process monitor: at aligned intervals it captures the
// metrics of the process tree under its ppid, logs one entry per process
// and keeps the capture for Status. Make it with [NewProcess]; it is a
// [supervisor.Monitor].
type Process struct {
	opts   ProcessOptions
	logger *slog.Logger
	clock  clock

	mu   sync.Mutex
	ppid int
	err  error          // why it cannot run, for Status
	last *ProcessStatus // the last capture
}

// ProcessStatus is the process monitor's status, in the original's shape.
type ProcessStatus struct {
	// PPID is the pid at the root of the captured tree.
	PPID int `json:"ppid"`
	// Metrics are the processes of the tree by process id.
	Metrics map[string]*procmetrics.Process `json:"metrics"`
	// CapturedAt is when the capture was taken (zero before the first).
	CapturedAt time.Time `json:"captured_at,omitzero"`
}

// NewProcess returns a process monitor with opts (defaults filled in). Bad
// options, or a ppid of 1, are reported by Run and Status.
func NewProcess(opts ProcessOptions) *Process {
	if opts.Interval == 0 {
		opts.Interval = DefaultProcessInterval
	}
	p := &Process{opts: opts, logger: opts.Logger, clock: opts.clock, ppid: opts.PPID}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	if p.clock == nil {
		p.clock = realClock{}
	}
	if p.ppid == 0 {
		p.ppid = os.Getppid()
		if p.ppid == 1 {
			p.err = fmt.Errorf("%w (the supervisor's parent is init: set ppid to the controller's pid)", ErrInitPPID)
		}
	}
	if err := opts.Validate(); err != nil {
		p.err = err
	}
	return p
}

// Register does nothing: the process monitor watches a tree, not the
// registrations.
func (p *Process) Register(conn *supervisor.Connection) {}

// Remove does nothing.
func (p *Process) Remove(conn *supervisor.Connection) {}

// Run captures the tree at once, then at every multiple of Interval,
// until ctx ends (then it returns nil). A failed capture is logged and the
// loop goes on; an invalid ppid is an error at once.
func (p *Process) Run(ctx context.Context) error {
	if p.err != nil {
		return p.err
	}
	sampler := &procmetrics.Sampler{FS: procmetrics.DefaultFS()}
	defer sampler.Close()
	body := func(ctx context.Context) error { return p.capture(sampler) }
	if err := safeRun(ctx, body); err != nil {
		p.logger.Error("process monitor capture failed", "error", err)
	}
	runAligned(ctx, p.clock, p.opts.Interval, p.logger, "process monitor capture", body)
	return nil
}

// capture captures the tree, keeps it and logs it.
func (p *Process) capture(sampler *procmetrics.Sampler) error {
	procs, err := sampler.Capture(p.ppid, true)
	if err != nil {
		return fmt.Errorf("capture of the tree under %d: %w", p.ppid, err)
	}
	st := &ProcessStatus{PPID: p.ppid, Metrics: make(map[string]*procmetrics.Process, len(procs)), CapturedAt: p.clock.Now()}
	pids := make([]int, 0, len(procs))
	for pid, proc := range procs {
		st.Metrics[strconv.Itoa(pid)] = proc
		pids = append(pids, pid)
	}
	p.mu.Lock()
	p.last = st
	p.mu.Unlock()
	slices.Sort(pids)
	for _, pid := range pids {
		p.logger.LogAttrs(context.Background(), slog.LevelDebug, "process metrics", processAttrs(procs[pid])...)
	}
	return nil
}

// processAttrs are the fields logged for one process.
func processAttrs(pr *procmetrics.Process) []slog.Attr {
	a := []slog.Attr{
		slog.Int("process_id", pr.ProcessID),
		slog.Int("parent_process_id", pr.ParentProcessID),
		slog.Int("process_group_id", pr.ProcessGroupID),
		slog.String("command", pr.Command),
		slog.Float64("processor_utilization", pr.ProcessorUtilization),
		slog.Uint64("virtual_size", pr.VirtualSize),
		slog.Uint64("resident_size", pr.ResidentSize),
		slog.Uint64("total_size", pr.TotalSize),
		slog.Float64("processor_time", pr.ProcessorTime),
		slog.Float64("elapsed_time", pr.ElapsedTime),
	}
	if m := pr.Memory; m != nil {
		a = append(a,
			slog.Int("map_count", m.MapCount),
			slog.Uint64("proportional_size", m.ProportionalSize),
			slog.Uint64("shared_clean_size", m.SharedCleanSize),
			slog.Uint64("shared_dirty_size", m.SharedDirtySize),
			slog.Uint64("private_clean_size", m.PrivateCleanSize),
			slog.Uint64("private_dirty_size", m.PrivateDirtySize),
			slog.Uint64("swap_size", m.SwapSize),
			slog.Uint64("major_faults", m.MajorFaults),
			slog.Uint64("minor_faults", m.MinorFaults),
		)
	}
	return a
}

// Name returns "process_monitor", the key of its status.
func (p *Process) Name() string { return "process_monitor" }

// Status returns {"process_monitor": ProcessStatus} from the last capture
// (with no metrics before the first), or the error that keeps the monitor
// from running.
func (p *Process) Status(ctx context.Context) (any, error) {
	st, err := p.Snapshot()
	if err != nil {
		return nil, err
	}
	return map[string]ProcessStatus{"process_monitor": st}, nil
}

// Snapshot returns the last capture, as Status does.
func (p *Process) Snapshot() (ProcessStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return ProcessStatus{}, p.err
	}
	if p.last == nil {
		return ProcessStatus{PPID: p.ppid, Metrics: map[string]*procmetrics.Process{}}, nil
	}
	return *p.last, nil
}
