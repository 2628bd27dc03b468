//go:build linux

package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// stopProcess signals pid through a pidfd, so that a pid reused after the
// process exited is never signalled, and waits for its exit by polling the
// pidfd (which is readable once the process has exited, reaped or not).
func stopProcess(ctx context.Context, pid int, grace time.Duration) (stopOutcome, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return outcomeGone, nil
	}
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		return stopByPid(ctx, pid, grace) // no pidfd (old kernel, seccomp)
	}
	if err != nil {
		return 0, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGINT, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return outcomeGone, nil
		}
		return 0, fmt.Errorf("SIGINT to %d: %w", pid, err)
	}
	exited, err := waitPidfd(ctx, fd, grace)
	if err != nil || exited {
		return outcomeInterrupted, err
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return outcomeInterrupted, nil
		}
		return 0, fmt.Errorf("SIGKILL to %d: %w", pid, err)
	}
	exited, err = waitPidfd(ctx, fd, killWait)
	if err == nil && !exited {
		err = fmt.Errorf("process %d still there %v after SIGKILL", pid, killWait)
	}
	return outcomeKilled, err
}

// waitPidfd waits up to d for the process of fd to exit, or for ctx.
func waitPidfd(ctx context.Context, fd int, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		ms := int(min(left, 100*time.Millisecond)/time.Millisecond) + 1
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false, fmt.Errorf("poll pidfd: %w", err)
		}
		if n > 0 {
			return true, nil
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
}

// stopByPid is stopProcess without pidfd: kill(2) and a poll of the
// process's state, a zombie counting as exited.
func stopByPid(ctx context.Context, pid int, grace time.Duration) (stopOutcome, error) {
	if err := unix.Kill(pid, unix.SIGINT); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return outcomeGone, nil
		}
		return 0, fmt.Errorf("SIGINT to %d: %w", pid, err)
	}
	exited, err := waitPid(ctx, pid, grace)
	if err != nil || exited {
		return outcomeInterrupted, err
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return outcomeInterrupted, nil
		}
		return 0, fmt.Errorf("SIGKILL to %d: %w", pid, err)
	}
	exited, err = waitPid(ctx, pid, killWait)
	if err == nil && !exited {
		err = fmt.Errorf("process %d still there %v after SIGKILL", pid, killWait)
	}
	return outcomeKilled, err
}

// waitPid waits up to d for pid to exit (or become a zombie), or for ctx.
func waitPid(ctx context.Context, pid int, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	path := fmt.Sprintf("/proc/%d/stat", pid)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			return true, nil
		}
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
