//go:build linux

package container

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/testutil"
	"github.com/vigild/vigil/notify"
)

func init() {
	helpers["notify-pieces"] = helperNotifyPieces
	helpers["notify-garbage"] = helperNotifyGarbage
	helpers["ready-exit"] = helperReadyExit
	helpers["escape-notify"] = helperEscapeNotify
	helpers["hold-notify"] = helperHoldNotify
}

// writeNotify writes s to the readiness pipe (fd 3) as it is, in one write.
func writeNotify(s string) error {
	_, err := syscall.Write(3, []byte(s))
	return err
}

// helperNotifyPieces writes a status and its ready message cut across
// lines, each piece a write of its own, some time apart.
func helperNotifyPieces([]string) int {
	for _, piece := range []string{"{\"status\":\"wa", "rming\"}\n{\"rea", "dy\":true,\"status\":\"se", "rving\"}", "\n"} {
		if err := writeNotify(piece); err != nil {
			return 3
		}
		time.Sleep(20 * time.Millisecond)
	}
	return waitStop(notifier())
}

// helperNotifyGarbage writes garbage around its ready message.
func helperNotifyGarbage([]string) int {
	for _, line := range []string{"garbage\n", "[1,2]\n", "\n", "   \n", strings.Repeat("x", notify.MaxLine+1) + "\n", "{\"errno\":\"x\"}\n", "{\"ready\":true,\"status\":\"after garbage\"}\n"} {
		if err := writeNotify(line); err != nil {
			return 3
		}
	}
	return waitStop(notifier())
}

// helperReadyExit says it is ready and exits at once.
func helperReadyExit([]string) int {
	if err := writeNotify("{\"ready\":true,\"status\":\"bye\"}\n"); err != nil {
		return 3
	}
	return 0
}

// helperEscapeNotify starts a grandchild that leaves the process group
// with the readiness pipe (fd 3) and fd 4, says it is ready and exits.
func helperEscapeNotify([]string) int {
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=hold-notify")
	cmd.ExtraFiles = []*os.File{os.NewFile(3, "notify"), os.NewFile(4, "held")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 4
	}
	if err := writeNotify("{\"ready\":true}\n"); err != nil {
		return 3
	}
	return 0
}

// helperHoldNotify writes heartbeats to the readiness pipe it inherited
// until a write fails (the reader closed it), then exits, which closes
// fd 4; at the latest after 30 s.
func helperHoldNotify([]string) int {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if err := writeNotify("{\"healthy\":true}\n"); err != nil {
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 1
}

// captureLogs returns a logger writing text to a buffer, and the buffer.
func captureLogs() (*slog.Logger, *testutil.Buffer) {
	buf := new(testutil.Buffer)
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// TestReadinessInPieces: a message cut across writes is read whole; each
// child's messages are its own.
func TestReadinessInPieces(t *testing.T) {
	logger, logs := captureLogs()
	c := startContainer(t, []Spec{helperSpec("web", "notify-pieces", 3)}, Options{Output: io.Discard, Logger: logger})
	if c.watcher == nil {
		t.Fatal("no watcher")
	}
	waitReady(t, c)
	for _, k := range c.Children() {
		if k.State != StateReady || k.Status != "serving" {
			t.Errorf("child %+v: want ready, status serving", k)
		}
	}
	if strings.Contains(logs.String(), "skipped") {
		t.Errorf("lines skipped:\n%s", logs)
	}
}

// TestReadinessGarbage: garbage lines and a line over notify.MaxLine are
// logged with the child's name and skipped; blank lines silently; the
// message after them counts.
func TestReadinessGarbage(t *testing.T) {
	logger, logs := captureLogs()
	c := startContainer(t, []Spec{helperSpec("web", "notify-garbage", 1)}, Options{Output: io.Discard, Logger: logger})
	waitReady(t, c)
	if k := c.Children()[0]; k.Status != "after garbage" {
		t.Errorf("child %+v: want the status after the garbage", k)
	}
	out := logs.String()
	if n := strings.Count(out, `msg="notify: garbage line skipped" child=web.0`); n != 3 {
		t.Errorf("%d garbage lines logged with the child's name, want 3:\n%.2000s", n, out)
	}
	if n := strings.Count(out, `msg="notify: line too long skipped" child=web.0 bytes=65538`); n != 1 {
		t.Errorf("%d lines too long logged, want 1:\n%.2000s", n, out)
	}
}

// TestMessageBeforeExitArrives: what a child wrote before it exited comes
// to the loop before its exit: twenty children each say ready and exit at
// once, and every one was ready (a message handled after the exit is
// dropped: the instance would have failed before it was ready).
func TestMessageBeforeExitArrives(t *testing.T) {
	s := helperSpec("once", "ready-exit", 20)
	s.Restart = false
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady = %v, want every child ready before its exit", err)
	}
	eventually(t, "all exited", func() bool { return countState(c.Children(), "once", StateExited) == 20 })
	if st := c.Statistics()[0]; st.Failures != 0 {
		t.Errorf("statistics %+v: want no failure", st)
	}
}

// TestGrandchildHoldsReadinessPipe: a grandchild that left the process
// group keeps the readiness pipe open after its parent exited: the pipe
// is still read for outputGrace after the exit, then closed (the
// grandchild's next write fails and it exits), and nothing is left open.
func TestGrandchildHoldsReadinessPipe(t *testing.T) {
	fds := openFDs(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := helperSpec("esc", "escape-notify", 1)
	s.Restart = false
	s.Files = []*os.File{w}
	c, err := NewContainer([]Spec{s}, Options{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	waitReady(t, c) // the child has started its grandchild
	w.Close()       // the grandchild holds the write end now, as fd 4
	eventually(t, "the child exited", func() bool { return c.Children()[0].State == StateExited })
	exited := time.Now()
	// r ends when the grandchild exits: its write to the readiness pipe
	// failed, the pipe closed.
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("the grandchild is still there: %v (the readiness pipe was never closed)", err)
	}
	if d := time.Since(exited); d < outputGrace-100*time.Millisecond {
		t.Errorf("the readiness pipe was closed %v after the exit, before its grace of %v", d, outputGrace)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Close()
	fdsBack(t, fds)
}

// idleShells is a service of n shells that say they are ready and sleep.
func idleShells(n int) Spec {
	return Spec{
		Name: "idle", Command: []string{"/bin/sh", "-c", `printf '{"ready":true}\n' >&3; exec sleep 3600`},
		Count: n, Restart: true, GracefulStop: 5 * time.Second,
	}
}

// TestWatcherGoroutines: the container's goroutines do not grow with its
// children (two per child before the watcher); its descriptors are
// those of the children (a pidfd and three pipes each), all closed by
// Stop.
func TestWatcherGoroutines(t *testing.T) {
	const n = 200
	fds := openFDs(t)
	before := runtime.NumGoroutine()
	c, err := NewContainer([]Spec{idleShells(n)}, Options{Output: io.Discard, Spawners: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	waitReady(t, c)
	grown := runtime.NumGoroutine() - before
	t.Logf("%d children: %d goroutines more", n, grown)
	if grown > 30 {
		t.Errorf("%d goroutines more with %d children: want a few, not a number that grows with the children", grown, n)
	}
	// A child killed is seen and replaced.
	pid := c.Children()[7].PID
	_ = killPID(pid)
	eventually(t, "replaced", func() bool { k := c.Children()[7]; return k.PID != pid && k.State == StateReady })
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	fdsBack(t, fds)
}

// TestWatcherFallbackWithoutEpoll: without an epoll set, each child has
// its goroutines, and everything works as with the watcher.
func TestWatcherFallbackWithoutEpoll(t *testing.T) {
	sys := defaultSys()
	sys.epoll = func() (*epollSet, error) { return nil, errors.New("no epoll here") }
	logger, logs := captureLogs()
	const n = 10
	before := runtime.NumGoroutine()
	c := startContainer(t, []Spec{helperSpec("web", "notify-pieces", n)}, Options{Output: io.Discard, Logger: logger, sys: sys})
	waitReady(t, c)
	if c.watcher != nil {
		t.Fatal("a watcher without an epoll set")
	}
	if !strings.Contains(logs.String(), "no epoll set to watch the children") || !strings.Contains(logs.String(), "no epoll here") {
		t.Errorf("the fallback is not logged:\n%s", logs)
	}
	if grown := runtime.NumGoroutine() - before; grown < 2*n {
		t.Errorf("%d goroutines more with %d children: want two each", grown, n)
	}
	for _, k := range c.Children() {
		if k.Status != "serving" {
			t.Errorf("child %+v: want status serving", k)
		}
	}
	pid := c.Children()[3].PID
	_ = killPID(pid)
	eventually(t, "replaced", func() bool { k := c.Children()[3]; return k.PID != pid && k.State == StateReady })
}

// TestWatcherFallbackWhenAddFails: a child whose descriptor cannot be
// added to the set has goroutines of its own; the others are watched.
func TestWatcherFallbackWhenAddFails(t *testing.T) {
	for _, kind := range []uint64{pipeKind, exitKind} {
		t.Run([]string{"exit", "pipe"}[kind], func(t *testing.T) {
			sys := defaultSys()
			var failed atomic.Int32
			add := sys.epollAdd
			sys.epollAdd = func(set *epollSet, fd int, data uint64) error {
				if data&1 == kind && failed.CompareAndSwap(0, 1) {
					return syscall.ENOSPC
				}
				return add(set, fd, data)
			}
			logger, logs := captureLogs()
			c := startContainer(t, []Spec{helperSpec("web", "notify-pieces", 3)}, Options{Output: io.Discard, Logger: logger, sys: sys})
			waitReady(t, c)
			if n := strings.Count(logs.String(), "cannot watch a child in the epoll set"); n != 1 {
				t.Errorf("%d children not watched, want 1:\n%s", n, logs)
			}
			pids := pidsOf(c.Children())
			for _, k := range c.Children() {
				if k.Status != "serving" {
					t.Errorf("child %+v: want status serving", k)
				}
			}
			// Every exit is seen, by the watcher or by goroutines.
			for _, pid := range pids {
				_ = killPID(pid)
			}
			eventually(t, "all replaced", func() bool {
				k := c.Children()
				return countState(k, "web", StateReady) == 3 && !slices.ContainsFunc(pidsOf(k), func(pid int) bool { return slices.Contains(pids, pid) })
			})
		})
	}
}

// TestFakeWaitExit: a test that fakes waitExit (and leaves sysOps.epoll
// nil) has it called for every child.
func TestFakeWaitExit(t *testing.T) {
	real := defaultSys()
	var mu sync.Mutex
	waited := map[int]bool{}
	sys := *real
	sys.epoll, sys.epollAdd = nil, nil
	sys.waitExit = func(pid, pidfd int) error {
		err := real.waitExit(pid, pidfd)
		mu.Lock()
		waited[pid] = true
		mu.Unlock()
		return err
	}
	c := startContainer(t, []Spec{helperSpec("web", "ready", 2)}, Options{Output: io.Discard, sys: &sys})
	waitReady(t, c)
	pids := pidsOf(c.Children())
	_ = killPID(pids[0])
	eventually(t, "replaced", func() bool { k := c.Children()[0]; return k.PID != pids[0] && k.State == StateReady })
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waited) != 3 || !waited[pids[0]] || !waited[pids[1]] {
		t.Errorf("waitExit returned for %v, want the 3 processes (first %v)", waited, pids)
	}
}

// fdsBack fails t unless the process's descriptors are soon back to fds
// (within 5 s: a descriptor closed by another goroutine a moment after
// Stop, as the hub's reader did before Hub.Close waited for it, is not a
// leak; one that stays open is).
func fdsBack(t *testing.T, fds int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := openFDs(t)
		if got == fds {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d descriptors open after Stop, %d before:%s", got, fds, fdTargets())
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
