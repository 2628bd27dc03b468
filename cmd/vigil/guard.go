package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/internal/memtrim"
)

func newGuardCmd() *cobra.Command {
	var (
		runID, cgroup string
		controller    int
	)
	cmd := &cobra.Command{
		Use:   "guard",
		Short: "Stop a run's processes once its controller is gone (vigil run starts it)",
		Long: `The guard reads descriptor 3, a pipe only vigil run writes to. When the
pipe ends without vigil run saying it stopped cleanly (it was killed), the
guard kills every process of the run: those whose environment carries the
run's VIGIL_RUN, and everything in the run's cgroup.`,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			usageDone(cmd)
			signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)
			// The guard waits for the rest of the run, holding no more than
			// it needs to wait, and allocating nothing: no garbage
			// collection either (the runtime's forced one, every two
			// minutes, would map back much of what the trim dropped). It
			// trims once the run has started (trimAfter, as the daemons
			// do), not at once: the trim is a few milliseconds of CPU that
			// the controller and the supervisor need then.
			if !readable(3, trimAfter) {
				_, _ = memtrim.Trim()
			}
			gc := debug.SetGCPercent(-1)
			b, _ := io.ReadAll(os.NewFile(3, "controller"))
			debug.SetGCPercent(gc)
			if strings.Contains(string(b), guardDone) {
				return nil
			}
			killed := container.StopRun(runID, cgroup, 5*time.Second)
			fmt.Fprintf(os.Stderr, "vigil guard: vigil run (pid %d) is gone: stopped %d processes of its run %s\n", controller, len(killed), runID)
			return nil
		},
	}
	cmd.Flags().StringVar(&runID, "run-id", "", "the run whose processes to stop")
	cmd.Flags().StringVar(&cgroup, "cgroup", "", "the run's cgroup")
	cmd.Flags().IntVar(&controller, "controller-pid", 0, "the controller (for the message)")
	_ = cmd.MarkFlagRequired("run-id")
	return cmd
}

// readable reports whether fd has something to read (or its end) within
// wait; false too if it cannot be polled.
func readable(fd int, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return false
		default:
			return n > 0
		}
	}
}
