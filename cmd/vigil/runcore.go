package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/internal/config"
	"github.com/vigild/vigil/internal/runstate"
)

// runCore is what vigil run holds besides the controller so that nothing
// of its tree outlives it: the run lock beside the socket (one controller
// per configuration; the record a later run reads if this one is killed),
// the subreaper (orphans reaped, escaped descendants stopped), and the
// guard (a small process that stops the run's processes if the controller
// is killed).
type runCore struct {
	logger *slog.Logger
	lock   *runstate.Lock
	reaper *container.Subreaper // nil if it could not be had
	guard  *guard               // nil if it could not be started
}

// newRunID returns a new run's id: 12 random hex digits.
func newRunID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startRunCore takes the run lock (failing when another vigil run holds
// it), stops what a killed previous run left, and starts the subreaper
// and the guard.
func startRunCore(exe string, cfg *config.Config, logger *slog.Logger) (*runCore, error) {
	socket := cfg.Supervisor.Socket
	lock, prev, err := runstate.Acquire(runstate.PathFor(socket))
	if errors.Is(err, runstate.ErrRunning) {
		holder := ""
		if prev != nil {
			holder = " (vigil run pid " + strconv.Itoa(prev.PID) + ")"
		}
		return nil, &exitError{code: exitFailed, err: fmt.Errorf("a supervisor is already listening on %s%s", socket, holder)}
	}
	if err != nil {
		return nil, err
	}
	rc := &runCore{logger: logger, lock: lock}
	if prev != nil {
		if killed := container.StopRun(prev.RunID, prev.Cgroup, 2*time.Second); len(killed) > 0 {
			logger.Warn("stopped processes left by a previous vigil run that was killed", "run", prev.RunID, "pid", prev.PID, "processes", len(killed), "pids", killed)
		}
	}
	runID := newRunID()
	rec := runstate.Record{PID: os.Getpid(), RunID: runID, Socket: socket, Started: time.Now()}
	rc.reaper, err = container.NewSubreaper(container.SubreaperOptions{RunID: runID, Logger: logger.With("component", "subreaper")})
	if err != nil {
		logger.Warn("not a subreaper: orphans of the workers go to init, and only their process groups are stopped", "error", err)
		rc.reaper = nil
	} else {
		rec.Cgroup = rc.reaper.CgroupBase()
		logger.Info("run", "id", runID, "tracking", rc.reaper.Tracking())
	}
	if err := lock.Write(rec); err != nil {
		logger.Warn("cannot write the run's record", "error", err)
	}
	if rc.reaper != nil {
		if rc.guard, err = startGuard(exe, runID, rec.Cgroup); err != nil {
			logger.Warn("no guard: if vigil run is killed, the next one stops what is left", "error", err)
		}
	}
	return rc, nil
}

// finish ends the run cleanly, once the controller has stopped: the guard
// told to leave quietly (first: it is a child the subreaper would
// otherwise kill and wait for), what is left stopped and reaped, the run
// lock released.
func (rc *runCore) finish() {
	if rc.guard != nil {
		rc.guard.finish()
	}
	if rc.reaper != nil {
		rc.reaper.Close(2 * time.Second)
	}
	if err := rc.lock.Release(); err != nil {
		rc.logger.Warn("cannot remove the run lock", "error", err)
	}
}

// guard is the process that outlives a killed controller long enough to
// stop its run (`vigil guard`); it reads a pipe whose only writer is the
// controller.
type guard struct {
	w    *os.File
	proc *os.Process
}

// guardDone is what the controller writes to its guard before a clean exit.
const guardDone = "done\n"

func startGuard(exe, runID, cgroup string) (*guard, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		w.Close()
		return nil, err
	}
	defer devnull.Close()
	args := []string{exe, "guard", "--run-id", runID, "--controller-pid", strconv.Itoa(os.Getpid())}
	if cgroup != "" {
		args = append(args, "--cgroup", cgroup)
	}
	p, err := os.StartProcess(exe, args, &os.ProcAttr{
		Files: []*os.File{devnull, devnull, os.Stderr, r},
		// Its own process group: a terminal's Ctrl-C is not for it.
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		w.Close()
		return nil, err
	}
	return &guard{w: w, proc: p}, nil
}

// finish tells the guard the run ended cleanly and waits (a little) for it
// to leave.
func (g *guard) finish() {
	_, _ = g.w.WriteString(guardDone)
	g.w.Close()
	done := make(chan struct{})
	go func() {
		_, _ = g.proc.Wait() // the subreaper may have reaped it first
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		_ = g.proc.Kill()
		<-done
	}
}
