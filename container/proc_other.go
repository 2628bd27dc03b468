//go:build !linux

package container

import (
	"errors"
	"os"
	"syscall"
)

const supported = false

// ErrUnsupported is returned where children cannot be run (not Linux).
var ErrUnsupported = errors.New("container: unsupported on this platform (Linux only)")

type spawnRequest struct {
	path  string
	argv  []string
	env   []string
	dir   string
	files []uintptr
}

type spawnReply struct {
	pid   int
	pidfd *os.File
	err   error
}

type spawner struct{}

func newSpawner() *spawner { return &spawner{} }

func (s *spawner) start(spawnRequest) spawnReply { return spawnReply{err: ErrUnsupported} }

func (s *spawner) stop() {}

func waitExit(*os.File) error { return ErrUnsupported }

func waitExitBlocking(int) error { return ErrUnsupported }

func reap(int) (ExitStatus, error) { return ExitStatus{Code: -1}, ErrUnsupported }

func signalGroup(int, syscall.Signal) error { return ErrUnsupported }
