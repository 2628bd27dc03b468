package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/worker"
)

// A program reports readiness and health, connects to the supervisor when
// run under vigil, and serves an operation of its own.
func ExampleStart() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	notifier, err := worker.NewNotifier(nil, logger) // silent outside vigil
	if err != nil {
		logger.Warn("readiness", "error", err)
	}
	defer notifier.Close()

	w, err := worker.Start(ctx, worker.Options{
		Logger: logger,
		Handlers: rpc.Handlers{
			"flush_cache": func(ctx context.Context, call *rpc.Call) error {
				return call.Finish(map[string]any{"flushed": true})
			},
		},
	})
	if err != nil && !errors.Is(err, worker.ErrNoSupervisor) {
		logger.Warn("supervisor", "error", err)
	}
	_ = notifier.Ready()
	go notifier.Beat(ctx, 5*time.Second, func(ctx context.Context) error {
		return nil // a real check of the program's own work
	})

	<-ctx.Done()
	_ = notifier.Stopping()
	if w != nil {
		w.Stop()
	}
}
