//go:build linux

package container

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Subreaper makes this process an init for everything its children start:
// with PR_SET_CHILD_SUBREAPER, a process whose parent dies is re-parented
// here (as it would be to PID 1), and the Subreaper reaps those orphans
// when they exit (no zombie is left behind, also when this process is PID
// 1 of a container) and stops the ones that outlived the child they came
// from.
//
// An orphan is traced to the child it came from by the environment every
// child gets (EnvRun and EnvSpawn), which descendants inherit; where a
// writable cgroup v2 is available, every child also runs in a cgroup of its
// own, and what is left of it when it exits is killed through cgroup.kill,
// whatever its environment says.
//
// The container's own children are reaped by the container; the Subreaper
// reaps only the processes it does not know. Create it with NewSubreaper
// before starting any child, give it to the Controller (ControllerOptions),
// and Close it after the Controller's Run has returned.
type Subreaper struct {
	logger *slog.Logger
	runID  string
	cg     *cgroups // nil: not in force

	// forking counts the forks under way (child not yet tracked): while
	// one is, a scan reaps no zombie it does not know, which could be that
	// child, and scans again once it is tracked. Spawns never wait for a
	// scan.
	forking atomic.Int32
	skipped atomic.Bool // a scan left zombies for later
	mu      sync.Mutex
	known   map[int]uint64  // pid -> spawn number of the container's live children
	live    map[uint64]bool // spawn numbers of processes not yet reaped
	traced  map[int]uint64  // other children: pid -> the spawn number they came from (0: none)
	stopped map[int]bool    // orphans already killed
	dead    []reapedChild   // reaped since the last scan: their cgroups to kill
	adopted int             // orphans reaped, for tests and logs
	killed  int             // descendants stopped

	wake chan struct{}
	sigs chan os.Signal
	quit chan struct{}
	done chan struct{}
}

// NewSubreaper makes the calling process a child subreaper and starts
// reaping. Where a cgroup v2 hierarchy is writable (and opts allow), a
// cgroup per child is made under this process's own cgroup (see Tracking).
func NewSubreaper(opts SubreaperOptions) (*Subreaper, error) {
	logger, runID := opts.Logger, opts.RunID
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if runID == "" {
		return nil, errors.New("subreaper: empty run id")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("subreaper: prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	s := &Subreaper{
		logger: logger, runID: runID,
		known: map[int]uint64{}, live: map[uint64]bool{}, traced: map[int]uint64{}, stopped: map[int]bool{},
		wake: make(chan struct{}, 1), sigs: make(chan os.Signal, 1),
		quit: make(chan struct{}), done: make(chan struct{}),
	}
	if opts.NoCgroups {
		logger.Info("children tracked by process group and descent (cgroups off)")
	} else if cg, err := newCgroups(runID); err != nil {
		logger.Info("children tracked by process group and descent (no writable cgroup v2)", "reason", err)
	} else {
		s.cg = cg
		if len(cg.swept) > 0 {
			logger.Info("removed the cgroups of runs killed with their guard", "cgroups", cg.swept)
		}
	}
	signal.Notify(s.sigs, syscall.SIGCHLD)
	go s.run()
	return s, nil
}

// RunID is the run's id, as every child's EnvRun says.
func (s *Subreaper) RunID() string { return s.runID }

// Tracking says how a child's descendants are found: "cgroup PATH" or
// "process group and descent".
func (s *Subreaper) Tracking() string {
	if s.cg != nil {
		return "cgroup " + s.cg.base
	}
	return "process group and descent"
}

// CgroupBase is the run's cgroup, "" when cgroups are not in force.
func (s *Subreaper) CgroupBase() string {
	if s.cg == nil {
		return ""
	}
	return s.cg.base
}

// Counts returns how many orphans were reaped and how many descendants
// that outlived their child were stopped.
func (s *Subreaper) Counts() (reaped, stopped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adopted, s.killed
}

// startChild runs start (a fork) so that no scan runs meanwhile, with a
// cgroup for the child when cgroups are in force (-1 otherwise): one of
// its own, or the run's if shared (Spec.SharedCgroup); and tracks the
// child it started.
func (s *Subreaper) startChild(seq uint64, name string, th *spawnThread, shared bool, start func(cgroupFD int) (int, error)) error {
	// Its spawn number is live before the fork: a scan never takes the
	// child for what is left of a process that ended.
	s.mu.Lock()
	s.live[seq] = true
	s.mu.Unlock()
	s.forking.Add(1)
	defer s.forkDone()
	fd := -1
	if s.cg != nil && shared {
		fd = th.local(s.cg.baseFD) // the run's cgroup (-1 if it cannot be had: vigil's own)
	} else if s.cg != nil {
		cg, err := s.cg.make(seq, name, th.local(s.cg.baseFD))
		if err != nil {
			s.logger.Warn("cgroup for a child failed: it is tracked by descent only", "child", name, "error", err)
		} else {
			defer unix.Close(cg)
			fd = cg
		}
	}
	pid, err := start(fd)
	if err != nil {
		if s.cg != nil {
			s.cg.remove(seq)
		}
		s.mu.Lock()
		delete(s.live, seq)
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	s.known[pid] = seq
	delete(s.traced, pid) // seen by a scan before it was tracked
	s.mu.Unlock()
	return nil
}

// forkDone ends a fork under way; a scan that left zombies for it runs
// again.
func (s *Subreaper) forkDone() {
	if s.forking.Add(-1) == 0 && s.skipped.Swap(false) {
		s.poke()
	}
}

// poke makes the scanner scan again.
func (s *Subreaper) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// reapedChild is a child the container reaped: its spawn number, and
// whether it exited because the container stopped it.
type reapedChild struct {
	seq     uint64
	stopped bool
}

// reaped tells the Subreaper that the container reaped pid (spawn number
// seq; stopped: the container had asked it to stop): what is left of it
// is stopped by the next scan.
func (s *Subreaper) reaped(pid int, seq uint64, stopped bool) {
	s.mu.Lock()
	delete(s.known, pid)
	delete(s.live, seq)
	s.dead = append(s.dead, reapedChild{seq, stopped})
	s.mu.Unlock()
	s.poke()
}

func (s *Subreaper) run() {
	defer close(s.done)
	for {
		select {
		case <-s.quit:
			return
		case <-s.sigs:
		case <-s.wake:
		}
		s.scan()
	}
}

// scan kills the cgroups of children reaped since the last scan, stops the
// live orphans whose child is gone where no cgroup did (a walk of this
// process's children), and reaps the orphans that have exited.
func (s *Subreaper) scan() {
	s.mu.Lock()
	dead := s.dead
	s.dead = nil
	s.mu.Unlock()
	walk := false
	for _, d := range dead {
		if s.cg == nil {
			walk = true
			continue
		}
		had, name, left := s.cg.kill(d.seq)
		switch {
		case !had:
			walk = true // no cgroup killed what is left of it
		case left == "":
		case d.stopped:
			s.logger.Debug("a child stopped left processes running: killed with it", "child", name, "left", left)
		default:
			s.logger.Warn("a child exited and left processes running: stopped with it (if it puts itself in the background, as a daemon does, run it in the foreground)",
				"child", name, "left", left)
		}
	}
	if s.cg != nil && len(dead) > 0 {
		s.cg.sweep()
	}
	if walk {
		s.stopOutlived()
	}
	s.reapExited()
}

// reapExited reaps the exited children this process does not know, one by
// one as waitid(P_ALL, WNOWAIT) shows them, without reading /proc: it stops
// at the first one it may not reap (the container's own, reaped by the
// container, whose reaped or forget wakes the next scan; or any while a
// fork is under way, scanned again after it).
func (s *Subreaper) reapExited() {
	for {
		pid := exitedChild()
		if pid <= 0 {
			return
		}
		s.mu.Lock()
		_, known := s.known[pid]
		s.mu.Unlock()
		if known {
			return
		}
		if s.forking.Load() > 0 {
			// It may be a child being started, not yet tracked: its zombie
			// is not ours to reap. Later.
			s.skipped.Store(true)
			return
		}
		if !s.reapOrphan(pid) {
			return
		}
	}
}

// exitedChild is a child of this process that has exited and not been
// reaped (left so), 0 if there is none.
func exitedChild() int {
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil {
		return 0
	}
	// si_pid, the first field of siginfo's union, which follows the three
	// int fields and is aligned as a pointer (linux/asm-generic/siginfo.h).
	off := unsafe.Sizeof(uintptr(0)) * 2
	if off < 12 {
		off = 12
	}
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(&info), off)))
}

// stopOutlived walks this process's children (/proc/self/task/*/children)
// for live orphans traced to a child that has been reaped, and kills them.
func (s *Subreaper) stopOutlived() {
	for _, pid := range ownChildren() {
		s.mu.Lock()
		_, known := s.known[pid]
		seq, ok := s.traced[pid]
		if !known && !ok {
			// A child being started is traced to its spawn number, live
			// before its fork.
			seq = s.trace(pid)
			s.traced[pid] = seq
			ok = true
		}
		outlived := ok && seq != 0 && !s.live[seq] && !s.stopped[pid]
		if outlived {
			s.stopped[pid] = true
			s.killed++
		}
		s.mu.Unlock()
		if outlived {
			s.logger.Info("stopping a descendant that outlived its child", "pid", pid, "spawn", seq, "command", commandOf(pid))
			_ = unix.Kill(-pid, unix.SIGKILL)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// reapOrphan reaps pid if it has exited, and reports whether it did.
func (s *Subreaper) reapOrphan(pid int) bool {
	var ws unix.WaitStatus
	got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	if err != nil || got != pid {
		return false
	}
	s.mu.Lock()
	delete(s.traced, pid)
	delete(s.stopped, pid)
	s.adopted++
	s.mu.Unlock()
	s.logger.Debug("reaped an orphan", "pid", pid, "status", exitStatusOf(syscall.WaitStatus(ws)).String())
	return true
}

// trace returns the spawn number an orphan of this run came from (its
// environment's EnvSpawn), 0 if it does not say it is of this run.
func (s *Subreaper) trace(pid int) uint64 {
	env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil {
		return 0
	}
	var run string
	var seq uint64
	for _, kv := range bytes.Split(env, []byte{0}) {
		k, v, _ := strings.Cut(string(kv), "=")
		switch k {
		case EnvRun:
			run = v
		case EnvSpawn:
			seq, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	if run != s.runID {
		return 0
	}
	return seq
}

// Close stops what is left (every process this one still has as a child,
// and every cgroup of the run), reaps them within timeout, removes the
// cgroups, and stops reaping. Call it once the container has stopped.
func (s *Subreaper) Close(timeout time.Duration) {
	close(s.quit)
	<-s.done
	signal.Stop(s.sigs)
	deadline := time.Now().Add(timeout)
	if s.cg != nil {
		s.cg.killAll()
	}
	// A process killed is gone within a millisecond or so: look again
	// soon, then less and less often.
	wait := 100 * time.Microsecond
	for {
		left := ownChildren()
		for _, pid := range left {
			_ = unix.Kill(pid, unix.SIGKILL)
			s.reapOrphan(pid)
		}
		if len(left) == 0 || time.Now().After(deadline) {
			if len(left) > 0 {
				s.logger.Warn("processes still there at exit", "pids", left)
			}
			break
		}
		time.Sleep(wait)
		wait = min(2*wait, 5*time.Millisecond)
	}
	if s.cg != nil {
		s.cg.close()
	}
}

// ownChildren lists this process's children, alive or zombie, from
// /proc/self/task/*/children.
func ownChildren() []int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", t.Name(), "children"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// describeProcs names at most n of pids, "COMMAND (pid PID)", and how
// many more there are.
func describeProcs(pids []int, n int) string {
	var parts []string
	for i, pid := range pids {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(pids)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (pid %d)", commandOf(pid), pid))
	}
	return strings.Join(parts, ", ")
}

// commandOf is pid's command name, for logs.
func commandOf(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// startCommand runs start (a fork) of a command of the container's own
// (an exec probe), tracked as a child of its, without a cgroup.
func (s *Subreaper) startCommand(seq uint64, start func(cgroupFD int) (int, error)) error {
	s.forking.Add(1)
	defer s.forkDone()
	pid, err := start(-1)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.known[pid] = seq
	s.mu.Unlock()
	return nil
}

// forget drops a command's pid once it has been reaped; a scan stopped at
// its zombie goes on.
func (s *Subreaper) forget(pid int) {
	s.mu.Lock()
	delete(s.known, pid)
	s.mu.Unlock()
	s.poke()
}
