//go:build linux

package container

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// spawnRequest asks the spawner thread to start one process.
type spawnRequest struct {
	path  string
	argv  []string
	env   []string
	dir   string
	files []uintptr
	reply chan spawnReply
}

type spawnReply struct {
	pid   int
	pidfd *os.File
	err   error
}

// spawner starts every child of a container from one goroutine locked to its
// OS thread. Linux sends a child's parent-death signal when the thread that
// created it exits, so that thread must outlive the children: the goroutine
// keeps its thread locked until stop, which the container calls only after
// every child has been reaped (the thread then exits with it). (Forking from
// one thread per CPU was measured: no faster on 2 CPUs, where the children's
// own start-up is the bottleneck.)
type spawner struct {
	reqs chan spawnRequest
	done chan struct{}
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnRequest), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *spawner) run() {
	runtime.LockOSThread()
	// Never unlocked: the thread exits with this goroutine, after the last
	// child is gone.
	defer close(s.done)
	for req := range s.reqs {
		req.reply <- startProcess(req)
	}
}

// start runs req on the spawner thread.
func (s *spawner) start(req spawnRequest) spawnReply {
	req.reply = make(chan spawnReply, 1)
	s.reqs <- req
	return <-req.reply
}

// stop ends the spawner goroutine and its thread.
func (s *spawner) stop() {
	close(s.reqs)
	<-s.done
}

func startProcess(req spawnRequest) spawnReply {
	attr := &syscall.ProcAttr{
		Dir:   req.dir,
		Env:   req.env,
		Files: req.files,
		Sys: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	pid, err := syscall.ForkExec(req.path, req.argv, attr)
	if err != nil {
		return spawnReply{err: fmt.Errorf("start %s: %w", req.path, err)}
	}
	// The child cannot be reaped before we wait for it, so pid still names it.
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		_ = unix.Kill(-pid, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
		return spawnReply{err: fmt.Errorf("pidfd_open %d: %w", pid, err)}
	}
	// A non-blocking fd given to os.NewFile is registered with the poller.
	return spawnReply{pid: pid, pidfd: os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid))}
}

// waitExit blocks the calling goroutine (not a thread: the pidfd is in Go's
// poller) until the process of pidfd has exited, without reaping it.
func waitExit(pidfd *os.File) error {
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
// it: the fallback when the pidfd cannot be waited on (kernels before 5.4).
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
