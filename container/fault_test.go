//go:build linux

package container

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestReplacementThatCannotStartLosesNothing is defect 1 of the process
// core: the binary is gone during a restart (a deploy), the replacement
// cannot be started; once the binary is back, the instance must still
// have exactly its old process, no second one may have been started over
// it, and Stop must not hang.
func TestReplacementThatCannotStartLosesNothing(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "worker")
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	s := helperSpec("web", "ready", 1)
	s.Command = []string{bin}
	before := sortedChildren()
	c, err := NewContainer([]Spec{s}, Options{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c)
	old := c.Children()[0].PID

	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	err = c.RestartChildren(context.Background(), "web", 0)
	if !errors.Is(err, ErrReplacementFailed) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("RestartChildren with the binary gone = %v, want ErrReplacementFailed wrapping ENOENT", err)
	}
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	// Several restart delays (20ms..200ms) pass: nothing may start.
	time.Sleep(time.Second)
	kids := c.Children()
	if len(kids) != 1 || kids[0].PID != old || kids[0].State != StateReady {
		t.Errorf("children after a failed replacement = %+v, want only the old pid %d, ready", kids, old)
	}
	mine := slices.DeleteFunc(sortedChildren(), func(pid int) bool { return slices.Contains(before, pid) })
	if !slices.Equal(mine, []int{old}) {
		t.Errorf("processes of the container %v, want only %d", mine, old)
	}
	// And a restart now works.
	if err := c.RestartChildren(context.Background(), "web", 0); err != nil {
		t.Fatalf("RestartChildren with the binary back: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop = %v after %v", err, time.Since(start))
	}
	noChildren(t)
}

// sortedChildren lists this process's children, sorted.
func sortedChildren() []int {
	out := ownChildren()
	slices.Sort(out)
	return out
}

// faultySys wraps the real system calls, failing spawns as told and
// recording signals and reaps.
type faultySys struct {
	real *sysOps

	mu         sync.Mutex
	failStarts []error // the next starts fail with these, in order
	starts     []time.Time
	reaped     map[int]bool
	late       []string // signals sent to a pid already reaped
}

func newFaultySys(fail ...error) *faultySys {
	return &faultySys{real: defaultSys(), failStarts: fail, reaped: map[int]bool{}}
}

func (f *faultySys) ops() *sysOps {
	return &sysOps{
		lookPath: f.real.lookPath,
		start: func(req startRequest) (int, error) {
			f.mu.Lock()
			f.starts = append(f.starts, time.Now())
			var err error
			if len(f.failStarts) > 0 {
				err, f.failStarts = f.failStarts[0], f.failStarts[1:]
			}
			f.mu.Unlock()
			if err != nil {
				return 0, &os.PathError{Op: "fork/exec", Path: req.path, Err: err}
			}
			return f.real.start(req)
		},
		signal: func(pid int, sig syscall.Signal) error {
			f.mu.Lock()
			if f.reaped[pid] {
				f.late = append(f.late, strconv.Itoa(pid)+" "+sig.String())
			}
			f.mu.Unlock()
			return f.real.signal(pid, sig)
		},
		pidfd:    f.real.pidfd,
		waitExit: f.real.waitExit,
		epoll:    f.real.epoll,
		epollAdd: f.real.epollAdd,
		reap: func(pid int) (ExitStatus, error) {
			st, err := f.real.reap(pid)
			f.mu.Lock()
			f.reaped[pid] = true
			f.mu.Unlock()
			return st, err
		},
	}
}

// TestSpawnErrorsBackOff: ETXTBSY (a binary being written), EAGAIN (the
// process limit) and ENOENT fail a spawn; each is a state of the instance
// and a retry after the back-off, never a crash nor an immediate loop.
func TestSpawnErrorsBackOff(t *testing.T) {
	fs := newFaultySys(syscall.ETXTBSY, syscall.EAGAIN, syscall.ENOENT)
	s := helperSpec("web", "ready", 1)
	s.RestartDelay, s.RestartDelayMax = 50*time.Millisecond, time.Second
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard, sys: fs.ops()})
	eventually(t, "ready after three failed spawns", func() bool {
		k := c.Children()
		return len(k) == 1 && k[0].State == StateReady
	})
	k := c.Children()[0]
	if k.LastError != "" || k.Restarts != 1 {
		t.Errorf("child = %+v, want the error cleared once started, and 1 restart (the first start failed)", k)
	}
	st := c.Statistics()[0]
	if st.Failures != 3 || st.Spawns != 1 {
		t.Errorf("statistics = %+v, want 3 failures and 1 spawn", st)
	}
	fs.mu.Lock()
	starts := slices.Clone(fs.starts)
	fs.mu.Unlock()
	if len(starts) != 4 {
		t.Fatalf("%d start attempts, want 4", len(starts))
	}
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < 40*time.Millisecond {
			t.Errorf("attempt %d came %v after the one before: want a back-off of at least the restart delay", i+1, gap)
		}
	}
}

// TestSpawnErrorIsAStateOfTheInstance: while a spawn keeps failing, the
// instance says so (backing off, its error, its next retry), and the other
// services run on.
func TestSpawnErrorIsAStateOfTheInstance(t *testing.T) {
	fails := make([]error, 1000)
	for i := range fails {
		fails[i] = syscall.EAGAIN
	}
	fs := newFaultySys(fails...)
	bad := helperSpec("bad", "ready", 1)
	bad.RestartDelay, bad.RestartDelayMax = 10*time.Millisecond, 50*time.Millisecond
	c := startContainer(t, []Spec{bad}, Options{Output: io.Discard, sys: fs.ops()})
	eventually(t, "backing off with its error", func() bool {
		k := c.Children()[0]
		return k.State == StateBackingOff && strings.Contains(k.LastError, "resource temporarily unavailable") && !k.NextRestart.IsZero()
	})
	if k := c.Children()[0]; k.PID != 0 {
		t.Errorf("child = %+v: no process may run", k)
	}
}

// TestNoSignalAfterReap: whatever the order of exits, stops and kills, a
// pid is never signalled once reaped (it may belong to another process by
// then).
func TestNoSignalAfterReap(t *testing.T) {
	fs := newFaultySys()
	s := helperSpec("web", "ready", 4)
	s.GracefulStop = 50 * time.Millisecond
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard, sys: fs.ops()})
	waitReady(t, c)
	for range 3 {
		killed := pidsOf(c.Children())
		for _, pid := range killed {
			_ = killPID(pid)
		}
		eventually(t, "all replaced", func() bool {
			k := c.Children()
			return countState(k, "web", StateReady) == 4 && !slices.ContainsFunc(pidsOf(k), func(pid int) bool { return slices.Contains(killed, pid) })
		})
		if err := c.RestartChildren(context.Background(), "web", -1); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.late) > 0 {
		t.Errorf("signals sent to pids already reaped: %v", fs.late)
	}
	if len(fs.reaped) < 4*3*2+4 {
		t.Errorf("%d pids reaped, want at least %d", len(fs.reaped), 4*3*2+4)
	}
}

// TestStopWithStuckOutput: an output that never takes a byte (a FIFO
// nobody reads) must not hold up Stop: what is queued is abandoned after a
// bound and counted.
func TestStopWithStuckOutput(t *testing.T) {
	w := &blockedWriter{release: make(chan struct{})}
	defer close(w.release) // lets the writer's goroutine end
	c, err := NewContainer([]Spec{helperSpec("flood", "output", 1, "LINES=20000")}, Options{Output: w, OutputBuffer: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %v with the output stuck", d)
	}
}
