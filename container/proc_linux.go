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
	// still names it), in the process's table: a bare descriptor, which
	// the caller closes.
	pidfd func(pid int) (int, error)
	// signal sends sig to the process group led by pid.
	signal func(pid int, sig syscall.Signal) error
	// waitExit blocks until the process has exited, without reaping it:
	// where no watcher watches it (see epoll), and for exec probes.
	waitExit func(pid, pidfd int) error
	// reap collects the exit status of pid, which has exited.
	reap func(pid int) (ExitStatus, error)
	// epoll makes the epoll set in which the container's watcher watches
	// every child (see watcher). Nil, or an error: each child has two
	// goroutines instead, one in waitExit, one reading its readiness pipe.
	// A test that fakes waitExit leaves it nil.
	epoll func() (*epollSet, error)
	// epollAdd adds fd to the epoll set, level-triggered for reading,
	// with data as its events' data.
	epollAdd func(set *epollSet, fd int, data uint64) error
}

func defaultSys() *sysOps {
	return &sysOps{
		lookPath: exec.LookPath,
		start:    startProcess,
		pidfd:    openPidfd,
		signal:   signalGroup,
		waitExit: waitExit,
		reap:     reap,
		epoll:    epollCreate,
		epollAdd: epollAdd,
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
// names it). It is non-blocking, as a waitid on it never waits: waitExit
// hands a copy to Go's poller.
func openPidfd(pid int) (int, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return fd, nil
}

// waitExit blocks the calling goroutine (not a thread: a copy of the
// pidfd is in Go's poller) until the process of pidfd has exited, without
// reaping it. If the pidfd cannot be waited on (kernels before 5.4), it
// blocks a thread in waitid instead.
func waitExit(pid, pidfd int) error {
	err := waitPidfd(pidfd)
	if err == nil {
		return nil
	}
	return waitExitBlocking(pid)
}

func waitPidfd(pidfd int) error {
	// A copy, which the poller may have: the caller closes its own.
	fd, err := unix.FcntlInt(uintptr(pidfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("dup: %w", err)
	}
	f := os.NewFile(uintptr(fd), "pidfd") // non-blocking: in the poller
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
// the descriptor the child gets as it is; both bare descriptors, -1 when
// closed or not made.
type pipeEnds struct {
	ours, child int
}

// noPipe is a pipe not made.
var noPipe = pipeEnds{ours: -1, child: -1}

// childPipe makes a pipe for a child to write to. Our end is non-blocking
// when nonblock is set (the readiness pipe: read by the watcher, or in Go's
// poller with deadlines); otherwise it stays blocking (it is handed on to
// be read elsewhere). The pipe is made in one call, with no change of mode
// on the child's end.
func childPipe(nonblock bool) (pipeEnds, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return noPipe, err
	}
	if nonblock {
		if err := unix.SetNonblock(p[0], true); err != nil {
			unix.Close(p[0])
			unix.Close(p[1])
			return noPipe, err
		}
	}
	return pipeEnds{ours: p[0], child: p[1]}, nil
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
	if e.ours >= 0 {
		unix.Close(e.ours)
		e.ours = -1
	}
}

// closeFD closes a bare descriptor.
func closeFD(fd int) { unix.Close(fd) }
