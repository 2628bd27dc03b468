// Package metrics serves, in the Prometheus and OpenMetrics text formats,
// what the supervisor already holds: the controller's children and
// statistics (asked through the supervisor, as a status call does), the
// process and memory monitors' figures, the supervisor's own counts, and,
// when asked to, the metrics of the workers that offer them (see package
// worker/workermetrics); with the Go and process collectors of the
// supervisor's own process. A scrape costs the workers nothing unless
// their own metrics are asked for.
//
// Every series is labelled by service, and by worker where it is a
// worker's: worker="web.0", SERVICE.INSTANCE as the command line names it
// (a label named instance would clash with the target label Prometheus
// adds to every series); never by pid or connection id, which change with
// every restart. The names follow Prometheus' conventions: the vigil_ prefix,
// base units (seconds, bytes), _total for counters. See the README's
// table of metrics.
package metrics

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigild/vigil/monitor"
	"github.com/vigild/vigil/supervisor"
)

// Defaults of [Options].
const (
	DefaultControllerTimeout = 5 * time.Second
	DefaultWorkerTimeout     = 2 * time.Second
	// DefaultWorkerConcurrency is how many workers are asked for their
	// metrics at once.
	DefaultWorkerConcurrency = 16
)

// Options says what a [Collector] reads. Every source is optional: a
// source left out, or that fails, leaves its series out (and
// vigil_metrics_source_up says so for the controller and the monitors).
type Options struct {
	// Server is the supervisor: its counts, its registrations, and the
	// controller registered with it, whose children and statistics a
	// scrape asks for.
	Server *supervisor.Server
	// Process is the process monitor: each worker's CPU time and memory,
	// from its last capture.
	Process *monitor.Process
	// Memory is the memory monitor: its kills and increases by service.
	Memory *monitor.Memory
	// Workers asks the workers that offer their own metrics (registered
	// with "metrics": "prometheus") for them at each scrape, and adds
	// them labelled by service and worker.
	Workers bool
	// WorkerTimeout bounds the wait for the workers' metrics (default
	// DefaultWorkerTimeout); a worker that does not answer in time is
	// left out of that scrape (vigil_worker_metrics_up is 0).
	WorkerTimeout time.Duration
	// ControllerTimeout bounds the wait for the controller's children
	// (default DefaultControllerTimeout).
	ControllerTimeout time.Duration
	// Version is vigil's version, for vigil_build_info.
	Version string
	// Logger receives the failures of a scrape's sources (nil discards).
	Logger *slog.Logger

	now func() time.Time // seam for tests
}

// Collector gathers the metrics of one supervisor. It is a
// prometheus.Gatherer; Handler serves it over HTTP.
type Collector struct {
	opts   Options
	logger *slog.Logger
	own    *prometheus.Registry // the supervisor process's own: Go, process, HTTP handler
	// noMetricsOp is when the controller answered that it does not serve
	// "metrics" (unix nanoseconds; 0: it does, or was not asked yet).
	noMetricsOp atomic.Int64
}

// New returns a Collector reading the sources of opts.
func New(opts Options) *Collector {
	if opts.WorkerTimeout <= 0 {
		opts.WorkerTimeout = DefaultWorkerTimeout
	}
	if opts.ControllerTimeout <= 0 {
		opts.ControllerTimeout = DefaultControllerTimeout
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.Version == "" {
		opts.Version = "unknown"
	}
	c := &Collector{opts: opts, logger: opts.Logger, own: prometheus.NewRegistry()}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	c.own.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return c
}

// Handler serves the metrics at /metrics (the Prometheus text format, or
// OpenMetrics when the scraper asks for it; gzip or zstd when it accepts
// them), and a page naming /metrics at /.
func (c *Collector) Handler() http.Handler {
	metrics := promhttp.InstrumentMetricHandler(c.own, promhttp.HandlerFor(c, promhttp.HandlerOpts{
		ErrorLog:            errorLog{c.logger},
		ErrorHandling:       promhttp.ContinueOnError,
		EnableOpenMetrics:   true,
		MaxRequestsInFlight: 4,
	}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", buffered(metrics))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("vigil's supervisor: its metrics are at /metrics\n"))
	})
	return mux
}

// errorLog passes promhttp's errors to the logger.
type errorLog struct{ logger *slog.Logger }

func (l errorLog) Println(v ...any) {
	l.logger.Warn("metrics: serving a scrape", "error", strings.TrimSpace(fmt.Sprintln(v...)))
}

// Gather gathers every family, sorted by name. The failure of a source is
// logged and leaves its series out: Gather fails only if the supervisor's
// own collectors do.
func (c *Collector) Gather() ([]*dto.MetricFamily, error) {
	own, err := c.own.Gather()
	var b builder
	now := c.opts.now()
	var s scrape
	c.read(&s)
	s.build(&b, now)
	b.buildInfo(c.opts.Version)
	families := b.families
	if c.opts.Workers && c.opts.Server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.WorkerTimeout)
		workers, up := c.workerMetrics(ctx)
		cancel()
		families = append(families, up)
		return merge(own, families, workers, c.logger), err
	}
	return merge(own, families, nil, c.logger), err
}

// buildInfo adds vigil_build_info.
func (b *builder) buildInfo(version string) {
	b.gauge("vigil_build_info", "vigil's version, and the Go version it was built with: always 1.", 1).
		add(labels(label(&lGoVersion, runtime.Version()), label(&lVersion, version)), 1)
}

// merge returns the families sorted by name: the supervisor's own, vigil's,
// and the workers'. A worker family with the name of one before it joins
// it if it has its type (and is dropped, logged, if not).
func merge(own, vigil, workers []*dto.MetricFamily, logger *slog.Logger) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(own)+len(vigil)+len(workers))
	out = append(out, own...)
	for _, mf := range vigil {
		if len(mf.Metric) > 0 { // an empty family is not valid exposition
			out = append(out, mf)
		}
	}
	if len(workers) > 0 {
		byName := make(map[string]*dto.MetricFamily, len(out))
		for _, mf := range out {
			byName[mf.GetName()] = mf
		}
		for _, mf := range workers {
			prev, ok := byName[mf.GetName()]
			switch {
			case !ok:
				byName[mf.GetName()] = mf
				out = append(out, mf)
			case prev.GetType() == mf.GetType():
				if slices.Contains(own, prev) || slices.Contains(vigil, prev) {
					// Never change a family that may be shared: make a new one.
					joined := &dto.MetricFamily{Name: prev.Name, Help: prev.Help, Type: prev.Type, Unit: prev.Unit,
						Metric: append(slices.Clip(prev.Metric), mf.Metric...)}
					i := slices.Index(out, prev)
					out[i], byName[mf.GetName()] = joined, joined
				} else {
					prev.Metric = append(prev.Metric, mf.Metric...)
				}
			default:
				logger.Warn("metrics: a worker's family has the name of another of a different type: left out",
					"family", mf.GetName(), "type", mf.GetType().String(), "other_type", prev.GetType().String())
			}
		}
	}
	slices.SortStableFunc(out, func(a, b *dto.MetricFamily) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return out
}
