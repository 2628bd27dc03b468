// Command goworker is an example vigil worker in Go. It needs no arguments:
//
//   - it serves HTTP on the port in PORT (unset or 0: any free port) and
//     logs the address;
//   - it reports ready to vigil once it listens, and healthy every few
//     seconds while its own HTTP handler answers a self-check;
//   - under vigil (VIGIL_SUPERVISOR_SOCKET set) it connects to the
//     supervisor, so that its goroutines, heap and CPU can be examined with
//     vigil's forward, and it serves one operation of its own, "stats";
//   - it stops cleanly on SIGINT or SIGTERM.
//
// Run by hand, the readiness calls are silent no-ops and it just serves.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/worker"
)

// healthInterval is how often the worker checks itself and reports healthy.
const healthInterval = 2 * time.Second

func main() {
	os.Exit(run(os.Getenv, os.Stderr))
}

// run is the program, returning its exit code.
func run(getenv func(string) string, stderr *os.File) int {
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	notifier, err := worker.NewNotifier(getenv, logger)
	if err != nil {
		logger.Warn("readiness notifications disabled", "error", err)
	}
	defer notifier.Close()
	_ = notifier.Status("starting")

	port := getenv("PORT")
	if port == "" {
		port = "0"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		logger.Error("PORT must be a port number (0 for any free port)", "PORT", port)
		return 2
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", port))
	if err != nil {
		logger.Error("listen", "error", err)
		return 1
	}
	addr := ln.Addr().(*net.TCPAddr)
	var served atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		fmt.Fprintf(w, "hello from %s (pid %d)\n", getenv(worker.EnvService), os.Getpid())
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("serve", "error", err)
			stop()
		}
	})
	logger.Info("listening", "address", addr.String())

	// Under vigil, connect to the supervisor; by hand, carry on without.
	w, err := worker.Start(ctx, worker.Options{
		Getenv: getenv,
		Logger: logger,
		State:  map[string]any{"port": addr.Port},
		Handlers: rpc.Handlers{
			"stats": func(ctx context.Context, call *rpc.Call) error {
				return call.Finish(map[string]any{"requests": served.Load(), "port": addr.Port})
			},
		},
	})
	switch {
	case errors.Is(err, worker.ErrNoSupervisor):
		logger.Info("not under vigil: no supervisor connection")
	case err != nil:
		logger.Warn("no supervisor connection", "error", err)
	}

	if err := notifier.Ready(); err != nil {
		logger.Warn("could not report ready", "error", err)
	}
	selfCheck := selfChecker(fmt.Sprintf("http://127.0.0.1:%d/healthz", addr.Port))
	wg.Go(func() { _ = notifier.Beat(ctx, healthInterval, selfCheck) })

	<-ctx.Done()
	logger.Info("stopping")
	_ = notifier.Stopping()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		logger.Warn("shutdown", "error", err)
	}
	if w != nil {
		w.Stop()
	}
	wg.Wait()
	return 0
}

// selfChecker returns a check that passes when url answers 200 within a
// second.
func selfChecker(url string) func(context.Context) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("self-check: %s", resp.Status)
		}
		return nil
	}
}
