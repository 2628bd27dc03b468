// Command worker is the worker of bench/metrics: a small Go worker that
// registers with the supervisor (package worker), says ready, and offers
// a few metrics of its own (package worker/workermetrics: a counter and a
// histogram) for the scrapes that ask the workers too. It idles until
// SIGINT or SIGTERM.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigild/vigil/worker"
	"github.com/vigild/vigil/worker/workermetrics"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bench_requests_total", Help: "Requests served."}, []string{"code"})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bench_request_duration_seconds", Help: "Request latency.", Buckets: prometheus.DefBuckets})
	reg.MustRegister(requests, latency)
	requests.WithLabelValues("200").Add(float64(os.Getpid() % 1000))
	latency.Observe(0.042)
	n, err := worker.NewNotifier(os.Getenv, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
	w, err := worker.Start(ctx, workermetrics.Add(worker.Options{}, reg))
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
	_ = n.Ready()
	<-ctx.Done()
	_ = n.Stopping()
	w.Wait()
}
