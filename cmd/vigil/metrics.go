package main

import (
	"context"
	"log/slog"
	"net"
	"strings"

	"github.com/vigild/vigil/internal/config"
	"github.com/vigild/vigil/metrics"
	"github.com/vigild/vigil/monitor"
	"github.com/vigild/vigil/supervisor"
)

// metricsServer is the supervisor's /metrics, as [metrics] asks: its
// listener is made before the supervisor serves (a bad address fails
// `vigil supervise` at once), and it serves until the supervisor stops.
type metricsServer struct {
	l       net.Listener
	handler *metrics.Collector
	logger  *slog.Logger
}

// listenMetrics listens where [metrics] says, for a collector over srv and
// its monitors; nil when [metrics] is off.
func listenMetrics(m config.Metrics, srv *supervisor.Server, logger *slog.Logger) (*metricsServer, error) {
	if m.Listen == "" {
		return nil, nil
	}
	opts := metrics.Options{Server: srv, Workers: m.Workers, WorkerTimeout: m.WorkerTimeout.D(),
		Version: strings.Fields(versionString())[1], Logger: logger}
	for _, mon := range srv.Monitors {
		switch mon := mon.(type) {
		case *monitor.Process:
			opts.Process = mon
		case *monitor.Memory:
			opts.Memory = mon
		}
	}
	l, err := metrics.Listen(m.Listen, m.SocketMode)
	if err != nil {
		return nil, err
	}
	return &metricsServer{l: l, handler: metrics.New(opts), logger: logger}, nil
}

// serve serves the metrics until ctx ends; an error is logged (the
// supervisor goes on without them).
func (ms *metricsServer) serve(ctx context.Context) {
	ms.logger.Info("serving metrics", "listen", ms.l.Addr().String(), "path", "/metrics")
	if err := metrics.Serve(ctx, ms.l, ms.handler.Handler(), ms.logger); err != nil {
		ms.logger.Error("metrics stopped", "error", err)
	}
}
