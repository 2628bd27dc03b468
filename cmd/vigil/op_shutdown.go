package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/internal/runstate"
)

func newShutdownCmd() *cobra.Command {
	var (
		o      opOptions
		noWait bool
	)
	cmd := &cobra.Command{
		Use:   "shutdown",
		Short: "Stop everything: every service, then the supervisor, then vigil run itself",
		Long: `vigil run stops every service gracefully, then its supervisor, and exits
0, as on SIGTERM: the one command that stops the tree (vigil stop all
stops the services and leaves vigil run and its supervisor up). The
command waits until vigil run is gone (its socket and its run lock
removed) and exits 0 then; --no-wait returns once vigil run has the
request.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			usageDone(cmd)
			return shutdown(cmd.Context(), &o, noWait, cmd.OutOrStdout())
		},
	}
	o.addSocketFlag(cmd, lifecycleTimeout, "how long to wait until everything has stopped (0: no limit)")
	o.addOutputFlag(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once vigil run has the request, without waiting until everything has stopped")
	return cmd
}

// shutdownPoll is how often shutdown looks whether vigil run is gone.
const shutdownPoll = 50 * time.Millisecond

// shutdown asks the controller to stop everything and waits until vigil
// run is gone.
func shutdown(parent context.Context, o *opOptions, noWait bool, out io.Writer) error {
	ctx, cancel := o.withTimeout(parent)
	defer cancel()
	c, v, err := o.fetchStatus(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if v.Controller == nil {
		return failed(nil, "shutdown needs the controller (`vigil run`), and none is registered with the supervisor at %s "+
			"(vigil restart --signal TERM signals the supervisor's parent)", o.socket)
	}
	pid := v.Controller.PID
	files := findRunFiles(o.socket)
	reply, _, err := o.callController(ctx, c, v, "shutdown", nil, false)
	if err != nil {
		return err
	}
	c.Close()
	if len(files.paths) == 0 {
		writeLine(out, "shutting down: vigil run (pid %d) has the request; %s cannot be looked at from here, so this command does not wait for the end", pid, o.socket)
		return nil
	}
	if noWait {
		if o.output == "json" {
			_, err := out.Write(append(withoutID(reply), '\n'))
			return err
		}
		writeLine(out, "shutting down: vigil run (pid %d) stops every service, then its supervisor, then itself", pid)
		return nil
	}
	tick := time.NewTicker(shutdownPoll)
	defer tick.Stop()
	for !files.gone() {
		select {
		case <-ctx.Done():
			return failed(ctx.Err(), "shutdown: vigil run (pid %d) has not stopped after %v (--timeout to wait longer); it goes on stopping: vigil status shows what is left", pid, o.timeout)
		case <-tick.C:
		}
	}
	if o.output == "json" {
		_, err := out.Write(append(withoutID(reply), '\n'))
		return err
	}
	writeLine(out, "stopped: every service, the supervisor and vigil run (pid %d)", pid)
	return nil
}

// runFiles are what a running vigil run keeps beside its socket: the
// socket itself and the run lock, as they were found (nil: not there).
// vigil run removes both as it exits, the lock last, once everything it
// started is gone.
type runFiles struct {
	paths []string
	infos []os.FileInfo
}

func findRunFiles(socket string) runFiles {
	var f runFiles
	for _, p := range []string{socket, runstate.PathFor(socket)} {
		if info, err := os.Stat(p); err == nil {
			f.paths, f.infos = append(f.paths, p), append(f.infos, info)
		}
	}
	return f
}

// gone reports whether each file found is gone, or replaced by another
// (a new vigil run, started by whatever watches it).
func (f runFiles) gone() bool {
	for i, p := range f.paths {
		now, err := os.Stat(p)
		if err == nil && os.SameFile(now, f.infos[i]) {
			return false
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return true
}
