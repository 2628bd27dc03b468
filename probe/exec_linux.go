//go:build linux

package probe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExecRunner is the default Runner: os/exec with the command in a process
// group of its own (stdin, stdout and stderr are /dev/null). It waits for
// the command's exit without reaping it (waitid WNOWAIT, on a pidfd in Go's
// poller, so that no thread blocks), kills what is left of its process
// group while the exited leader still pins the group's id, then reaps it. So
// a timed-out command dies with its children, and a command that leaves a
// background child behind does not leave it running.
func ExecRunner(ctx context.Context, argv, env []string, dir string) (int, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return -1, err
	}
	pid := cmd.Process.Pid
	killed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(killed)
		_ = unix.Kill(-pid, unix.SIGKILL)
	})
	werr := waitExited(pid)
	wasKilled := !stop()
	if wasKilled {
		<-killed
	}
	// The leader is a zombie until Wait: its pid still names this group.
	_ = unix.Kill(-pid, unix.SIGKILL)
	err := cmd.Wait()
	code := exitCode(cmd.ProcessState)
	switch {
	case werr != nil:
		return code, fmt.Errorf("wait for pid %d: %w", pid, werr)
	case wasKilled:
		return code, fmt.Errorf("killed: %w", context.Cause(ctx))
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return code, err
	}
	return code, nil
}

// exitCode is the exit code, or 128+N for a death by signal N, or -1.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// waitExited returns once pid (a child) has exited, without reaping it: on
// a pidfd in Go's poller, or, where pidfds are missing (before Linux 5.3),
// blocking a thread.
func waitExited(pid int) error {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		for {
			var info unix.Siginfo
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if !errors.Is(err, unix.EINTR) {
				return err
			}
		}
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		var info unix.Siginfo
		werr = unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if errors.Is(werr, unix.EINTR) || errors.Is(werr, unix.EAGAIN) {
			return false
		}
		// Signo stays zero while the child runs.
		return werr != nil || info.Signo != 0
	})
	if err != nil {
		return err
	}
	return werr
}
