//go:build !linux

package container

import (
	"errors"
	"syscall"
)

const supported = false

// ErrUnsupported is returned where children cannot be run (not Linux).
var ErrUnsupported = errors.New("container: unsupported on this platform (Linux only)")

type sysOps struct {
	lookPath func(file string) (string, error)
	start    func(req startRequest) (int, error)
	pidfd    func(pid int) (int, error)
	signal   func(pid int, sig syscall.Signal) error
	waitExit func(pid, pidfd int) error
	reap     func(pid int) (ExitStatus, error)
	epoll    func() (*epollSet, error)
	epollAdd func(set *epollSet, fd int, data uint64) error
}

func unsupported() error { return ErrUnsupported }

func defaultSys() *sysOps {
	return &sysOps{
		lookPath: func(string) (string, error) { return "", unsupported() },
		start:    func(startRequest) (int, error) { return 0, unsupported() },
		pidfd:    func(int) (int, error) { return -1, unsupported() },
		signal:   func(int, syscall.Signal) error { return unsupported() },
		waitExit: func(int, int) error { return unsupported() },
		reap:     func(int) (ExitStatus, error) { return ExitStatus{Code: -1}, unsupported() },
	}
}

func lockThread() {}

func unlockThread() {}

type startRequest struct {
	path       string
	argv       []string
	env        []string
	dir        string
	files      []uintptr
	cgroupFD   int
	credential *syscall.Credential
}

// pipeEnds is a pipe to a child (see the Linux version).
type pipeEnds struct {
	ours, child int
}

var noPipe = pipeEnds{ours: -1, child: -1}

func childPipe(bool) (pipeEnds, error) { return noPipe, unsupported() }

func (e *pipeEnds) closeChild() {}

func (e *pipeEnds) close() {}

func closeFD(int) {}
