package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/internal/top"
	"github.com/vigild/vigil/supervisor"
)

func newTopCmd() *cobra.Command {
	var (
		o        opOptions
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "top [SERVICE]",
		Short: "A live, full-screen view of the workers, for a terminal",
		Long: `Show one row per worker, redrawn every second: state, uptime, restarts,
CPU and private memory, each with a sparkline of the last minute (the CPU
and memory figures need the process monitor: [supervisor.monitors.process]).
With SERVICE, only that service's workers (/ changes the filter).

Keys: up and down (or j and k) select a worker; s sorts by the next key
(name, cpu, memory, restarts, uptime), S reverses; / filters by service;
r restarts the selected worker (after y: its replacement must be ready
first); d shows its goroutines, l its last log lines, in $PAGER (less);
q quits.

It reads the supervisor through the same status call as vigil status, once
a second. For pipes and dumb terminals, vigil status --watch.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if interval < 100*time.Millisecond {
				return usageErr("--interval %v: at least 100ms", interval)
			}
			if !writerIsTerminal(cmd.OutOrStdout()) || !isTerminal(os.Stdin.Fd()) || os.Getenv("TERM") == "dumb" {
				return usageErr("vigil top needs a terminal: for pipes and dumb terminals, vigil status --watch")
			}
			usageDone(cmd)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM)
			defer stop()
			opts, closeClient := topOptions(&o, interval)
			defer closeClient()
			if len(args) == 1 {
				opts.Filter = args[0]
			}
			return top.Run(ctx, opts, os.Stdin, cmd.OutOrStdout())
		},
	}
	cmd.ValidArgsFunction = completeServices(&o)
	o.addSocketFlag(cmd, 5*time.Second, "how long to wait for each status answer")
	cmd.Flags().DurationVar(&interval, "interval", top.DefaultInterval, "time between two status calls")
	return cmd
}

// topOptions wires the view to the supervisor: one connection for the
// status calls (dialled again when it fails; closeClient closes it),
// restarts as vigil restart makes them, and the pager over vigil's own
// dump and logs commands.
func topOptions(o *opOptions, interval time.Duration) (opts top.Options, closeClient func()) {
	var (
		mu sync.Mutex // the calls come one at a time; the close may not
		c  *supervisor.Client
	)
	closeClient = func() {
		mu.Lock()
		defer mu.Unlock()
		if c != nil {
			c.Close()
			c = nil
		}
	}
	status := func(ctx context.Context) (*statusview.View, error) {
		mu.Lock()
		defer mu.Unlock()
		cctx, cancel := o.withTimeout(ctx)
		defer cancel()
		if c == nil {
			var err error
			if c, err = o.dial(cctx); err != nil {
				return nil, err
			}
		}
		st, err := callStatus(cctx, c)
		if err != nil {
			c.Close()
			c = nil
			return nil, o.callError("status", err)
		}
		return statusview.New(st), nil
	}
	restart := func(ctx context.Context, worker string) (string, error) {
		var out bytes.Buffer
		ro := *o
		ro.timeout = 5 * time.Minute
		err := restartChildren(ctx, &ro, worker, false, &out)
		return out.String(), err
	}
	pager := func(what, worker string) *exec.Cmd {
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		args := []string{"dump", "goroutines", worker}
		if what == "logs" {
			args = []string{"logs", worker, "--lines", "1000", "--timeout", "10s"}
		}
		// "$0" is vigil; the pager reads its output, errors included.
		script := `"$0" "$@" 2>&1 | ${PAGER:-less}`
		cmd := exec.Command("sh", append([]string{"-c", script, exe}, append(args, "--socket", o.socket)...)...)
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		return cmd
	}
	return top.Options{Title: o.socket, Interval: interval, Status: status, Restart: restart, Pager: pager}, closeClient
}
