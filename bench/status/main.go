// Command status measures `vigil status` as a whole command, start-up
// included: it starts `vigil supervise`, registers N connections (and a
// controller serving the children of N workers), then times runs of
// `vigil status` and prints the median and the 95th percentile.
//
//	go run ./bench/status            # builds vigil, N = 100, 1000 and 10000
//	go run ./bench/status -vigil ./vigil -n 100,1000,5000 -runs 100
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

func main() {
	vigil := flag.String("vigil", "", "the vigil binary (default: build ./cmd/vigil)")
	ns := flag.String("n", "100,1000,10000", "numbers of registered connections, comma-separated")
	runs := flag.Int("runs", 50, "timed runs of vigil status per N")
	controller := flag.Bool("controller", true, "register a controller that serves the N workers' children")
	flag.Parse()
	if err := run(*vigil, *ns, *runs, *controller); err != nil {
		fmt.Fprintln(os.Stderr, "bench/status:", err)
		os.Exit(1)
	}
}

func run(vigil, ns string, runs int, controller bool) error {
	dir, err := os.MkdirTemp("", "vigil-bench-status-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if vigil == "" {
		vigil = filepath.Join(dir, "vigil")
		build := exec.Command("go", "build", "-o", vigil, "github.com/vigild/vigil/cmd/vigil")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building vigil: %w", err)
		}
	}
	base, err := timeRuns(runs, vigil, "version")
	if err != nil {
		return err
	}
	fmt.Printf("vigil version (start-up alone): median %v, p95 %v\n", median(base), p95(base))
	for _, s := range strings.Split(ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			return fmt.Errorf("-n: bad number %q", s)
		}
		if err := bench(vigil, dir, n, runs, controller); err != nil {
			return fmt.Errorf("with n=%d: %w", n, err)
		}
	}
	return nil
}

func bench(vigil, dir string, n, runs int, controller bool) error {
	socket := filepath.Join(dir, fmt.Sprintf("s%d.ipc", n))
	// The limit of connections above n and this command's own (the default
	// of 10,000 would refuse some at n = 10,000).
	conf := filepath.Join(dir, fmt.Sprintf("s%d.toml", n))
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[supervisor]\nsocket = %q\nmax_connections = %d\n", socket, n+100)), 0o600); err != nil {
		return err
	}
	sup := exec.Command(vigil, "supervise", "--config", conf, "--log-level", "warn")
	if err := sup.Start(); err != nil {
		return err
	}
	defer func() {
		sup.Process.Signal(syscall.SIGTERM)
		sup.Wait()
	}()
	ctx := context.Background()
	var clients []*supervisor.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	dial := func(opts supervisor.ClientOptions) (*supervisor.Client, error) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := supervisor.DialOptions(ctx, socket, opts)
			if err == nil {
				clients = append(clients, c)
				return c, nil
			}
			if time.Now().After(deadline) {
				return nil, err
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	pid := os.Getpid()
	for i := range n {
		c, err := dial(supervisor.ClientOptions{})
		if err != nil {
			return err
		}
		if _, err := c.Register(ctx, map[string]any{"process_id": pid, "name": "svc", "instance": i}); err != nil {
			return err
		}
	}
	if controller {
		children := make([]map[string]any, n)
		for i := range children {
			children[i] = map[string]any{"service": "svc", "instance": i, "pid": pid, "state": "ready",
				"restarts": 0, "last_exit": nil, "started_at": time.Now().UTC().Format(time.RFC3339), "uptime": 12.5, "next_restart": nil}
		}
		// Encoded once: the bench measures vigil, not this stand-in
		// controller's encoding.
		reply, err := json.Marshal(map[string]any{"children": children, "statistics": map[string]any{"svc": map[string]any{"spawns": n, "restarts": 0, "failures": 0, "restart_rate": 0, "failure_rate": 0}}})
		if err != nil {
			return err
		}
		c, err := dial(supervisor.ClientOptions{Handlers: rpc.Handlers{
			"children": func(ctx context.Context, call *rpc.Call) error { return call.Finish(json.RawMessage(reply)) },
		}})
		if err != nil {
			return err
		}
		if _, err := c.Register(ctx, map[string]any{"role": "controller", "process_id": pid}); err != nil {
			return err
		}
	}
	// The supervisor's share: one status call from a connected client.
	probe, err := dial(supervisor.ClientOptions{})
	if err != nil {
		return err
	}
	var calls []time.Duration
	for i := range runs + 3 {
		start := time.Now()
		if _, err := probe.Conn().Call(ctx, "status", nil, func(*rpc.Message) error { return nil }); err != nil {
			return err
		}
		if i >= 3 {
			calls = append(calls, time.Since(start))
		}
	}
	slices.Sort(calls)
	times, err := timeRuns(runs, vigil, "status", "--socket", socket)
	if err != nil {
		return err
	}
	what := "connections"
	if controller {
		what = "workers (connections + the controller's children)"
	}
	fmt.Printf("vigil status, N=%d %s: median %v, p95 %v (%d runs); of which the status call alone: median %v\n",
		n, what, median(times), p95(times), runs, median(calls))
	return nil
}

// timeRuns runs the command (after 3 warm-up runs) and returns each run's
// wall time.
func timeRuns(runs int, name string, args ...string) ([]time.Duration, error) {
	var times []time.Duration
	for i := range runs + 3 {
		cmd := exec.Command(name, args...)
		cmd.Stdout = io.Discard
		cmd.Stderr = os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s %v: %w", name, args, err)
		}
		if i >= 3 {
			times = append(times, time.Since(start))
		}
	}
	slices.Sort(times)
	return times, nil
}

func median(t []time.Duration) time.Duration {
	return t[len(t)/2].Round(10 * time.Microsecond)
}

func p95(t []time.Duration) time.Duration {
	i := (len(t)*95 + 99) / 100
	return t[min(i, len(t))-1].Round(10 * time.Microsecond)
}
