package metrics

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/control"
	"github.com/vigild/vigil/monitor"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// scrape is what one scrape read from its sources.
type scrape struct {
	stats    *supervisor.Stats  // nil: no server
	children *control.Children  // nil: no controller, or it did not answer
	sources  map[string]bool    // source -> it answered
	took     map[string]float64 // source -> seconds to read it
	proc     *monitor.ProcessStatus
	mem      *monitor.MemoryStatus
	counts   map[string]monitor.ServiceCounts
}

// Sources, as vigil_metrics_source_up names them.
const (
	sourceController = "controller"
	sourceProcess    = "process_monitor"
	sourceMemory     = "memory_monitor"
)

// read reads every source of the collector.
func (c *Collector) read(s *scrape) {
	s.sources, s.took = map[string]bool{}, map[string]float64{}
	if srv := c.opts.Server; srv != nil {
		st := srv.Stats()
		s.stats = &st
		began := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.ControllerTimeout)
		children, err := c.controllerFigures(ctx, srv)
		cancel()
		switch {
		case errors.Is(err, supervisor.ErrNoController):
			c.logger.Debug("metrics: no controller registered: no children")
		case err != nil:
			c.logger.Warn("metrics: no children from the controller", "error", err)
		default:
			s.children = children
		}
		s.sources[sourceController] = s.children != nil
		s.took[sourceController] = time.Since(began).Seconds()
	}
	if p := c.opts.Process; p != nil {
		st, err := p.Snapshot()
		if err != nil {
			c.logger.Warn("metrics: no figures from the process monitor", "error", err)
		} else {
			s.proc = &st
		}
		s.sources[sourceProcess] = err == nil
	}
	if m := c.opts.Memory; m != nil {
		st := m.Snapshot()
		s.mem, s.counts = &st, m.Counts()
		s.sources[sourceMemory] = true
	}
}

// controllerFigures asks the controller for its children and statistics:
// by the "metrics" operation, or by "children" from a controller that does
// not serve it (asked again every few minutes: it may be restarted with
// it).
func (c *Collector) controllerFigures(ctx context.Context, srv *supervisor.Server) (*control.Children, error) {
	if since := c.noMetricsOp.Load(); since == 0 || time.Since(time.Unix(0, since)) > reprobeMetricsOp {
		reply, err := srv.CallController(ctx, control.MetricsOperation, nil)
		var re *rpc.RemoteError
		switch {
		case err == nil:
			c.noMetricsOp.Store(0)
			return control.DecodeMetrics(reply)
		case !errors.As(err, &re) || re.Class != "NoMethodError":
			return nil, err
		}
		c.noMetricsOp.Store(time.Now().UnixNano())
	}
	reply, err := srv.CallController(ctx, "children", nil)
	if err != nil {
		return nil, err
	}
	return decodeChildren(reply)
}

// reprobeMetricsOp is how long a controller that did not serve "metrics"
// is asked for "children" instead.
const reprobeMetricsOp = 5 * time.Minute

// instanceRow is one instance of a service, as the series show it: the first
// child the controller lists for it (its current process, or the instance
// itself when none runs; a replacement being started and the processes
// being stopped come after it).
type instanceRow struct {
	child  *control.Child
	labels []*dto.LabelPair
}

// build adds the families of what was read.
func (s *scrape) build(b *builder, now time.Time) {
	up := b.gauge("vigil_metrics_source_up", "Whether a source answered this scrape: the controller (children, statistics), the process monitor, the memory monitor.", len(s.sources))
	took := b.gauge("vigil_metrics_source_duration_seconds", "How long this scrape took to read a source: the controller's children and statistics (asked for, sent, decoded).", len(s.took))
	for _, name := range []string{sourceController, sourceMemory, sourceProcess} {
		if ok, present := s.sources[name]; present {
			up.add([]*dto.LabelPair{label(&lSource, name)}, bool01(ok))
		}
		if d, present := s.took[name]; present {
			took.add([]*dto.LabelPair{label(&lSource, name)}, d)
		}
	}
	if s.stats != nil {
		s.buildSupervisor(b)
	}
	if s.children != nil {
		workers := s.workers()
		s.buildServices(b, workers)
		s.buildWorkers(b, workers, now)
	}
	if s.proc != nil && !s.proc.CapturedAt.IsZero() {
		b.gauge("vigil_process_monitor_capture_timestamp_seconds", "When the process monitor's last capture (the workers' CPU and memory figures) was taken, in seconds since the epoch.", 1).
			add(nil, unixSeconds(s.proc.CapturedAt))
	}
	if s.mem != nil {
		s.buildMemory(b)
	}
}

// workers picks the instance each series describes, in the controller's
// order (by service, then instance).
func (s *scrape) workers() []instanceRow {
	seen := make(map[string]map[int]bool)
	out := make([]instanceRow, 0, len(s.children.Children))
	names := make(map[string]*string)
	for i := range s.children.Children {
		ch := &s.children.Children[i]
		if seen[ch.Service] == nil {
			seen[ch.Service] = make(map[int]bool)
		}
		if seen[ch.Service][ch.Instance] {
			continue
		}
		seen[ch.Service][ch.Instance] = true
		svc := names[ch.Service]
		if svc == nil {
			v := ch.Service
			svc, names[ch.Service] = &v, &v
		}
		name := ch.Service + "." + strconv.Itoa(ch.Instance)
		out = append(out, instanceRow{child: ch, labels: []*dto.LabelPair{
			{Name: &lService, Value: svc}, {Name: &lWorker, Value: &name},
		}})
	}
	return out
}

// running reports whether an instance's process runs, wanted.
func running(state string) bool {
	return state == "starting" || state == "ready" || state == "unhealthy"
}

// desired reports whether an instance is meant to run: not stopped by an
// operator, not scaled away (its process stopping), not exited for good.
func desired(state string) bool {
	return state != "stopping" && state != "stopped" && state != "exited"
}

// buildServices adds the families per service: counts of workers, and the
// controller's statistics.
func (s *scrape) buildServices(b *builder, workers []instanceRow) {
	type counts struct{ desired, running, ready int }
	byService := map[string]*counts{}
	var order []string
	for _, w := range workers {
		c := byService[w.child.Service]
		if c == nil {
			c = &counts{}
			byService[w.child.Service] = c
			order = append(order, w.child.Service)
		}
		st := w.child.State
		if desired(st) {
			c.desired++
		}
		if running(st) {
			c.running++
		}
		if st == "ready" {
			c.ready++
		}
	}
	for name := range s.children.Statistics {
		if byService[name] == nil {
			byService[name] = &counts{}
			order = append(order, name)
		}
	}
	slices.Sort(order)
	n := len(order)
	fDesired := b.gauge("vigil_service_desired_workers", "Instances the service is meant to run: its count (as configured or scaled), less those an operator stopped.", n)
	fRunning := b.gauge("vigil_service_running_workers", "Instances of the service whose process runs (starting, ready or unhealthy).", n)
	fReady := b.gauge("vigil_service_ready_workers", "Instances of the service that are ready.", n)
	fSpawns := b.counter("vigil_service_spawns_total", "Processes started for the service, restarts and replacements included.", n)
	fRestarts := b.counter("vigil_service_restarts_total", "Processes started for the service after an instance's first: restarts after an exit, and replacements.", n)
	fFailures := b.counter("vigil_service_failures_total", "Processes of the service that exited unsuccessfully (a non-zero code, a signal, a kill after a failed clock), and spawns that failed.", n)
	fDropped := b.counter("vigil_service_log_lines_dropped_total", "Lines of the service's output dropped because the output buffer was full.", n)
	fLatency := b.histogram("vigil_service_ready_latency_seconds", "How long the service's processes took from their start to their first ready.")
	for _, name := range order {
		l := []*dto.LabelPair{label(&lService, name)}
		c := byService[name]
		fDesired.add(l, float64(c.desired))
		fRunning.add(l, float64(c.running))
		fReady.add(l, float64(c.ready))
		st, ok := s.children.Statistics[name]
		if !ok {
			continue
		}
		fSpawns.add(l, float64(st.Spawns))
		fRestarts.add(l, float64(st.Restarts))
		fFailures.add(l, float64(st.Failures))
		fDropped.add(l, float64(st.OutputDroppedLines))
		if h := st.ReadyLatency; len(h.Bounds) > 0 && len(h.Counts) == len(h.Bounds) {
			addHistogram(fLatency, l, h.Bounds, h.Counts, h.Count, h.Sum)
		}
	}
}

// buildWorkers adds the families per instance.
func (s *scrape) buildWorkers(b *builder, workers []instanceRow, now time.Time) {
	n := len(workers)
	fUp := b.gauge("vigil_worker_up", "Whether a process runs for the instance.", n)
	fReady := b.gauge("vigil_worker_ready", "Whether the instance is ready.", n)
	fHealthy := b.gauge("vigil_worker_healthy", "Whether the instance's process runs and has not failed its health check.", n)
	fRestarts := b.counter("vigil_worker_restarts_total", "Processes started for the instance after its first.", n)
	fStart := b.gauge("vigil_worker_start_timestamp_seconds", "When the instance's process started, in seconds since the epoch.", n)
	fReadyAt := b.gauge("vigil_worker_ready_timestamp_seconds", "When the instance's process first became ready, in seconds since the epoch.", n)
	fBackoff := b.gauge("vigil_worker_backoff_seconds", "Seconds until a backing-off instance is started again (only the instances backing off have one).", 0)
	var fCPU, fPrivate, fResident, fProportional *family
	if s.proc != nil {
		fCPU = b.counter("vigil_worker_cpu_seconds_total", "CPU time (user and system) of the instance's process, at the process monitor's last capture.", n)
		fPrivate = b.gauge("vigil_worker_private_memory_bytes", "Private memory (clean and dirty) of the instance's process, at the process monitor's last capture.", n)
		fResident = b.gauge("vigil_worker_resident_memory_bytes", "Resident memory of the instance's process, at the process monitor's last capture.", n)
		fProportional = b.gauge("vigil_worker_proportional_memory_bytes", "Proportional set size of the instance's process (shared pages divided among their sharers), at the process monitor's last capture.", n)
	}
	stats := s.children.Statistics
	for _, w := range workers {
		ch, l := w.child, w.labels
		pid := ch.PID
		fUp.add(l, bool01(pid > 0))
		fReady.add(l, bool01(ch.State == "ready"))
		fHealthy.add(l, bool01(pid > 0 && ch.State != "unhealthy"))
		fRestarts.add(l, float64(ch.Restarts))
		if ch.StartedAt != nil {
			fStart.add(l, unixSeconds(*ch.StartedAt))
			if at, ok := stats[ch.Service].ReadyAt[ch.Instance]; ok && !at.Before(*ch.StartedAt) {
				fReadyAt.add(l, unixSeconds(at))
			}
		}
		if ch.NextRestart != nil {
			fBackoff.add(l, max(ch.NextRestart.Sub(now).Seconds(), 0))
		}
		if s.proc == nil || pid <= 0 {
			continue
		}
		p := s.proc.Metrics[strconv.Itoa(pid)]
		if p == nil {
			continue
		}
		fCPU.add(l, p.ProcessorTime)
		fResident.add(l, float64(p.ResidentSize))
		if m := p.Memory; m != nil {
			fPrivate.add(l, float64(m.PrivateSize()))
			fProportional.add(l, float64(m.ProportionalSize))
		}
	}
	s.buildExits(b)
}

// buildExits adds vigil_worker_exits_total from the statistics.
func (s *scrape) buildExits(b *builder) {
	names := make([]string, 0, len(s.children.Statistics))
	n := 0
	for name, st := range s.children.Statistics {
		names = append(names, name)
		n += len(st.Exits)
	}
	slices.Sort(names)
	f := b.counter("vigil_worker_exits_total", "Processes of the instance that ended, by reason: exit (code says how), signal (one vigil did not send), oom (SIGKILL while the kernel's out-of-memory killer struck), startup_timeout, health_check_timeout (killed by vigil), stopped (by vigil: stop, restart, reload, scale), spawn_failed (could not be started).", n)
	for _, name := range names {
		svc := name
		for _, e := range s.children.Statistics[name].Exits {
			code := ""
			if e.Reason == container.ExitCode {
				code = strconv.Itoa(e.Code)
			}
			f.add(labels(label(&lCode, code), label(&lReason, e.Reason), &dto.LabelPair{Name: &lService, Value: &svc},
				label(&lSignal, e.Signal), label(&lWorker, svc+"."+strconv.Itoa(e.Instance))), float64(e.Count))
		}
	}
}

// buildSupervisor adds the supervisor's own families.
func (s *scrape) buildSupervisor(b *builder) {
	st := s.stats
	b.gauge("vigil_supervisor_connections", "Connections to the supervisor's socket being served.", 1).add(nil, float64(st.Connections))
	b.gauge("vigil_supervisor_registrations", "Connections registered with the supervisor (workers, the controller).", 1).add(nil, float64(st.Registrations))
	b.counter("vigil_supervisor_connections_refused_total", "Connections closed at once because the supervisor served max_connections.", 1).add(nil, float64(st.Refused))
	calls := b.counter("vigil_supervisor_calls_total", "Calls the supervisor served, by operation and outcome (ok, failed, denied).", len(st.Calls))
	for _, c := range st.Calls {
		calls.add([]*dto.LabelPair{label(&lOperation, c.Operation), label(&lOutcome, c.Outcome)}, float64(c.Count))
	}
	fwd := b.histogram("vigil_supervisor_forward_duration_seconds", "How long operations forwarded through the supervisor took, from the call to the target's final reply, by target (worker, controller).")
	targets := make([]string, 0, len(st.Forward))
	for t := range st.Forward {
		targets = append(targets, t)
	}
	slices.Sort(targets)
	for _, t := range targets {
		h := st.Forward[t]
		addHistogram(fwd, []*dto.LabelPair{label(&lTarget, t)}, h.Bounds, h.Counts, h.Count, h.Sum)
	}
}

// buildMemory adds the memory monitor's families.
func (s *scrape) buildMemory(b *builder) {
	names := make([]string, 0, len(s.counts))
	n := 0
	for name, c := range s.counts {
		names = append(names, name)
		n += len(c.Kills)
	}
	slices.Sort(names)
	kills := b.counter("vigil_memory_monitor_kills_total", "Workers the memory monitor stopped, by service and reason (maximum_size_limit, increase_limit, total_size_limit, free_size_minimum).", n)
	increases := b.counter("vigil_memory_monitor_increases_total", "Rises of a worker's private memory by more than its threshold above the largest seen: the leak detector's evidence (increase_limit of them stop a worker).", len(names))
	for _, name := range names {
		c := s.counts[name]
		reasons := make([]string, 0, len(c.Kills))
		for r := range c.Kills {
			reasons = append(reasons, r)
		}
		slices.Sort(reasons)
		for _, r := range reasons {
			kills.add([]*dto.LabelPair{label(&lReason, r), label(&lService, name)}, float64(c.Kills[r]))
		}
		increases.add([]*dto.LabelPair{label(&lService, name)}, float64(c.Increases))
	}
	if t := s.mem.TotalSize; t != nil {
		b.gauge("vigil_memory_monitor_total_memory_bytes", "The workers' memory as the memory monitor counts it against total_size_limit: the largest shared size plus every private size.", 1).add(nil, float64(*t))
	}
	if f := s.mem.FreeSize; f != nil {
		b.gauge("vigil_memory_monitor_free_memory_bytes", "The host's (or the memory cgroup's) free memory at the memory monitor's last poll.", 1).add(nil, float64(*f))
	}
}

// unixSeconds is t in seconds since the epoch.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
