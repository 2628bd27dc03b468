// Package workermetrics lets a Go worker hand its own Prometheus metrics
// to vigil's supervisor, so that one scrape of vigil's /metrics covers the
// workers too, each labelled by its service and instance: no port per
// worker, no service discovery of workers. The supervisor asks only when
// its [metrics] table says workers = true, and only the workers that
// offer them, which Add arranges:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(requests)
//	w, err := worker.Start(ctx, workermetrics.Add(worker.Options{}, reg))
//
// The operation is apart from package worker so that a worker that does
// not use it does not depend on client_golang.
package workermetrics

import (
	"bytes"
	"context"
	"maps"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/worker"
)

// Operation is the operation the supervisor calls for a worker's metrics;
// its final reply is {"data": TEXT, "format": Format}, TEXT in the
// Prometheus text format.
const Operation = "prometheus_metrics"

// Format is the reply's "format": the Prometheus text format, 0.0.4.
const Format = "prometheus_text"

// StateKey and StateValue are the registered state's key and value by
// which a worker offers its metrics: the supervisor asks no other.
const (
	StateKey   = "metrics"
	StateValue = "prometheus"
)

// MaxSize is the largest text a worker sends: more fails the call (the
// supervisor's line limit is 8 MiB by default).
const MaxSize = 4 << 20

// Handler returns the operation serving g's metrics.
func Handler(g prometheus.Gatherer) rpc.Handler {
	return func(ctx context.Context, call *rpc.Call) error {
		families, err := g.Gather()
		if err != nil && len(families) == 0 {
			return rpc.Errorf("MetricsError", "gathering the metrics: %v", err)
		}
		var b bytes.Buffer
		for _, mf := range families {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				return rpc.Errorf("MetricsError", "encoding %s: %v", mf.GetName(), err)
			}
			if b.Len() > MaxSize {
				return rpc.Errorf("MetricsError", "the metrics are over %d bytes", MaxSize)
			}
		}
		return call.Finish(map[string]string{"data": b.String(), "format": Format})
	}
}

// Add returns opts with the operation serving g's metrics among its
// handlers, and the state that tells the supervisor to ask for them. It
// does not change opts' maps.
func Add(opts worker.Options, g prometheus.Gatherer) worker.Options {
	opts.Handlers = maps.Clone(opts.Handlers)
	if opts.Handlers == nil {
		opts.Handlers = rpc.Handlers{}
	}
	opts.Handlers[Operation] = Handler(g)
	opts.State = maps.Clone(opts.State)
	if opts.State == nil {
		opts.State = map[string]any{}
	}
	opts.State[StateKey] = StateValue
	return opts
}
