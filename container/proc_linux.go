//go:build linux

package container

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// sysOps are the operating system's operations the container uses, as
// function fields so that tests make them fail (habit 4 of STYLE.md).
type sysOps struct {
	// lookPath resolves a command without a slash in PATH.
	lookPath func(file string) (string, error)
	// start forks and execs a child, on the calling (locked) thread, in a
	// process group of its own with SIGKILL as its parent-death signal. It
	// returns the pid.
	start func(req startRequest) (int, error)
	// pidfd opens a pidfd for a child that has not been reaped (its pid
	// still names it), in the process's table.
	pidfd func(pid int) (*os.File, error)
	// signal sends sig to the process group led by pid.
	signal func(pid int, sig syscall.Signal) error
	// waitExit blocks until the process has exited, without reaping it.
	waitExit func(pid int, pidfd *os.File) error
	// reap collects the exit status of pid, which has exited.
	reap func(pid int) (ExitStatus, error)
}

func defaultSys() *sysOps {
	return &sysOps{
		lookPath: exec.LookPath,
		start:    startProcess,
		pidfd:    openPidfd,
		signal:   signalGroup,
		waitExit: waitExit,
		reap:     reap,
	}
}

// lockThread locks the calling goroutine to its thread.
func lockThread() { runtime.LockOSThread() }

// unlockThread undoes lockThread.
func unlockThread() { runtime.UnlockOSThread() }

// startRequest is one process to start.
type startRequest struct {
	path  string
	argv  []string
	env   []string
	dir   string
	files []uintptr // its descriptors 0, 1, 2, ...
	// cgroupFD, when not -1, is the cgroup v2 directory the child starts in
	// (CLONE_INTO_CGROUP).
	cgroupFD int
	// credential, when set, is who the child runs as.
	credential *syscall.Credential
}

func startProcess(req startRequest) (int, error) {
	sys := &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if req.cgroupFD >= 0 {
		sys.UseCgroupFD, sys.CgroupFD = true, req.cgroupFD
	}
	sys.Credential = req.credential
	attr := &syscall.ProcAttr{Dir: req.dir, Env: req.env, Files: req.files, Sys: sys}
	pid, err := syscall.ForkExec(req.path, req.argv, attr)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", req.path, err)
	}
	return pid, nil
}

// openPidfd opens a pidfd for pid, a child not yet reaped (so pid still
// names it). A non-blocking pidfd given to os.NewFile is registered with
// the poller.
func openPidfd(pid int) (*os.File, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid)), nil
}

// waitExit blocks the calling goroutine (not a thread: the pidfd is in Go's
// poller) until the process of pidfd has exited, without reaping it. If the
// pidfd cannot be waited on (kernels before 5.4), it blocks a thread in
// waitid instead.
func waitExit(pid int, pidfd *os.File) error {
	err := waitPidfd(pidfd)
	if err == nil {
		return nil
	}
	return waitExitBlocking(pid)
}

func waitPidfd(pidfd *os.File) error {
	rc, err := pidfd.SyscallConn()
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
		// Signo is zero while no state change is waitable.
		return werr != nil || info.Signo != 0
	})
	if err != nil {
		return err
	}
	return werr
}

// waitExitBlocking blocks a thread until pid has exited, without reaping
// it: the fallback when the pidfd cannot be waited on.
func waitExitBlocking(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// reap collects the exit status of pid, which has exited.
func reap(pid int) (ExitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return ExitStatus{Code: -1}, fmt.Errorf("wait4 %d: %w", pid, err)
		}
		return exitStatusOf(syscall.WaitStatus(ws)), nil
	}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return unix.Kill(-pid, sig)
}

const supported = true

// ErrUnsupported is returned where children cannot be run (not Linux).
var ErrUnsupported = errors.New("container: unsupported on this platform")

// pipeEnds is a pipe to a child: ours is this process's read end, child
// the descriptor the child gets as it is.
type pipeEnds struct {
	ours  *os.File
	child int
}

// childPipe makes a pipe for a child to write to. Our end is in the poller
// when pollable is set (it is read with deadlines); otherwise it stays
// blocking (it is handed on to be read elsewhere). The pipe is made in one
// call, with no change of mode on the child's end.
func childPipe(pollable bool) (pipeEnds, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return pipeEnds{}, err
	}
	if pollable {
		if err := unix.SetNonblock(p[0], true); err != nil {
			unix.Close(p[0])
			unix.Close(p[1])
			return pipeEnds{}, err
		}
	}
	return pipeEnds{ours: os.NewFile(uintptr(p[0]), "|0"), child: p[1]}, nil
}

// closeChild closes the child's end (once the child has it, or has
// failed to start).
func (e *pipeEnds) closeChild() {
	if e.child >= 0 {
		unix.Close(e.child)
		e.child = -1
	}
}

// close closes both ends.
func (e *pipeEnds) close() {
	e.closeChild()
	e.ours.Close()
}
