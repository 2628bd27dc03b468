//go:build linux

package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/testutil"
)

// syncBuffer is a buffer safe for concurrent writers and readers.
type syncBuffer = testutil.Buffer

func TestWorkersBecomeReadyAndStopLeavesNothing(t *testing.T) {
	// Warm up: the runtime (and the race detector) open some descriptors
	// for good the first time a process is started.
	warm := startContainer(t, []Spec{helperSpec("warm", "ready", 1)}, Options{Output: io.Discard})
	waitReady(t, warm)
	if err := warm.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	fds := openFDs(t)
	c, err := NewContainer([]Spec{helperSpec("web", "ready", 4)}, Options{Output: new(syncBuffer)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c)
	kids := c.Children()
	if len(kids) != 4 || countState(kids, "web", StateReady) != 4 {
		t.Fatalf("children = %+v, want 4 ready", kids)
	}
	for i, k := range kids {
		if k.Instance != i || k.Status != "serving" || k.PID == 0 {
			t.Errorf("child %d = %+v", i, k)
		}
		pgid, err := syscall.Getpgid(k.PID)
		if err != nil || pgid != k.PID {
			t.Errorf("child %d: pgid %d (%v), want its own group %d", i, pgid, err, k.PID)
		}
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pidsOf(kids) {
		if alive(pid) {
			t.Errorf("pid %d still alive after Stop", pid)
		}
	}
	noChildren(t)
	fdsBack(t, fds)
	st := c.Statistics()
	if len(st) != 1 || st[0].Spawns != 4 || st[0].Failures != 0 || st[0].Restarts != 0 {
		t.Errorf("statistics = %+v, want 4 spawns and nothing else", st)
	}
}

func TestKilledWorkerIsReplacedAndReady(t *testing.T) {
	c := startContainer(t, []Spec{helperSpec("web", "ready", 2)}, Options{Output: new(syncBuffer)})
	waitReady(t, c)
	victim := c.Children()[1]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replacement ready", func() bool {
		k := c.Children()[1]
		return k.PID != victim.PID && k.PID != 0 && k.State == StateReady
	})
	k := c.Children()[1]
	if k.Restarts != 1 || k.LastExit == nil || !k.LastExit.Killed() {
		t.Errorf("replacement = %+v, want 1 restart after SIGKILL", k)
	}
	if alive(victim.PID) {
		t.Errorf("victim %d not reaped", victim.PID)
	}
	st := c.Statistics()[0]
	if st.Spawns != 3 || st.Restarts != 1 || st.Failures != 1 || st.RestartRate <= 0 || st.FailureRate <= 0 {
		t.Errorf("statistics = %+v", st)
	}
}

func TestStartupTimeoutKillsSilentWorker(t *testing.T) {
	s := helperSpec("slow", "silent", 1)
	s.StartupTimeout = 200 * time.Millisecond
	s.Restart = false
	var pol recordingPolicy
	c := startContainer(t, []Spec{s}, Options{CheckInterval: 50 * time.Millisecond, Policy: &pol})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := c.WaitReady(ctx)
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "startup timeout") {
		t.Fatalf("WaitReady = %v, want ErrNotReady naming the startup timeout", err)
	}
	eventually(t, "child exited", func() bool { return c.Children()[0].State == StateExited })
	k := c.Children()[0]
	if k.LastExit == nil || !k.LastExit.Killed() {
		t.Errorf("child = %+v, want killed", k)
	}
	if pol.count("startup") != 1 || pol.count("health") != 0 {
		t.Errorf("policy calls = %v", pol.calls())
	}
}

func TestHealthCheckTimeoutKillsSilentReadyWorker(t *testing.T) {
	quiet := helperSpec("quiet", "ready", 1)
	quiet.HealthCheckTimeout = time.Second
	chatty := helperSpec("chatty", "ready", 1, "HEARTBEAT=50ms")
	chatty.HealthCheckTimeout = time.Second // 20 heartbeats of margin
	var pol recordingPolicy
	c := startContainer(t, []Spec{quiet, chatty}, Options{CheckInterval: 50 * time.Millisecond, Policy: &pol, Output: new(syncBuffer)})
	waitReady(t, c)
	first := c.Children()
	eventually(t, "quiet worker replaced", func() bool {
		k := c.Children()[0]
		return k.Restarts >= 1 && k.State == StateReady
	})
	k := c.Children()[0]
	if k.LastExit == nil || !k.LastExit.Killed() {
		t.Errorf("quiet = %+v, want killed", k)
	}
	if ch := c.Children()[1]; ch.PID != first[1].PID || ch.Restarts != 0 {
		t.Errorf("chatty worker with heartbeats was restarted: %+v", ch)
	}
	if pol.count("health") < 1 {
		t.Errorf("policy calls = %v", pol.calls())
	}
}

func TestCrashLoopBacksOff(t *testing.T) {
	s := helperSpec("crashy", "crash", 1)
	s.RestartDelay, s.RestartDelayMax = 20*time.Millisecond, 200*time.Millisecond
	var pol recordingPolicy
	out := new(syncBuffer)
	c := startContainer(t, []Spec{s}, Options{Policy: &pol, Output: out})
	eventually(t, "8 exits", func() bool { return pol.count("exit") >= 8 })
	times := pol.spawnTimes()
	var gaps []time.Duration
	for i := 1; i < len(times) && i < 8; i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]))
	}
	t.Logf("gaps between spawns: %v", gaps)
	// Expected delays: 0, 20, 40, 80, 160, 200, 200 ms (minus up to 20%
	// jitter), plus the helper's own run time. Only lower bounds are
	// checked (a loaded machine only adds time); exact delays are checked by
	// TestBackoff.
	for i, d := range []time.Duration{0, 20, 40, 80, 160, 200, 200} {
		if min := d * time.Millisecond * 8 / 10; gaps[i] < min {
			t.Errorf("gap %d = %v, want at least %v", i, gaps[i], min)
		}
	}
	eventually(t, "backing off state", func() bool {
		k := c.Children()[0]
		return k.State == StateBackingOff && !k.NextRestart.IsZero()
	})
	if st := c.Statistics()[0]; st.Failures < 8 || st.Restarts < 7 {
		t.Errorf("statistics = %+v", st)
	}
	if !strings.Contains(out.String(), "crashy.0 | crashing\n") {
		t.Errorf("output lacks the crash line: %q", out.String())
	}
}

func TestNoRestartStaysDown(t *testing.T) {
	s := helperSpec("once", "exit-on-ready", 2)
	s.Restart = false
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard})
	waitReady(t, c)
	eventually(t, "both exited", func() bool { return countState(c.Children(), "once", StateExited) == 2 })
	time.Sleep(100 * time.Millisecond)
	for _, k := range c.Children() {
		if k.Restarts != 0 || k.LastExit == nil || !k.LastExit.Success() {
			t.Errorf("child %+v", k)
		}
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	s := helperSpec("stubborn", "ignore-stop", 2)
	s.GracefulStop = 100 * time.Millisecond
	c, err := NewContainer([]Spec{s}, Options{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c)
	kids := c.Children()
	start := time.Now()
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("stop took %v, want the two graceful waits first", d)
	}
	for _, pid := range pidsOf(kids) {
		if alive(pid) {
			t.Errorf("pid %d alive", pid)
		}
	}
	noChildren(t)
}

func TestStopContextKillsAtOnce(t *testing.T) {
	s := helperSpec("stubborn", "ignore-stop", 1)
	s.GracefulStop = time.Hour
	c, err := NewContainer([]Spec{s}, Options{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want deadline exceeded", err)
	}
	noChildren(t)
}

func TestGrandchildInGroupIsKilled(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	s := helperSpec("parent", "grandchild", 1, "PIDFILE="+pidfile)
	c, err := NewContainer([]Spec{s}, Options{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c)
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	gc, _ := strconv.Atoi(string(b))
	if !alive(gc) {
		t.Fatalf("grandchild %d not running", gc)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The grandchild ignores SIGINT and SIGTERM; its parent exits on SIGINT
	// and the container kills the rest of the group. It is reparented, so
	// wait for its new parent to reap it.
	eventually(t, "grandchild gone", func() bool { return !alive(gc) })
}

func TestOutputIsPrefixed(t *testing.T) {
	out := new(syncBuffer)
	c := startContainer(t, []Spec{helperSpec("talk", "output", 2, "LINES=3")}, Options{Output: out})
	waitReady(t, c)
	eventually(t, "stderr lines", func() bool {
		return strings.Count(out.String(), "| to stderr\n") == 2 && strings.Count(out.String(), "| I am ") == 2
	})
	for _, want := range []string{"talk.0 | line 0\n", "talk.0 | line 2\n", "talk.1 | line 1\n", "talk.1 | to stderr\n",
		"talk.0 | I am talk.0\n", "talk.1 | I am talk.1\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// blockedWriter blocks every Write until released.
type blockedWriter struct {
	release chan struct{}
	buf     syncBuffer
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.buf.Write(p)
}

func TestOutputNeverBlocksChildAndCountsDrops(t *testing.T) {
	w := &blockedWriter{release: make(chan struct{})}
	// 20000 lines of ~20 bytes overflow a 4 KiB buffer and the 64 KiB pipe:
	// the child still gets to say ready.
	c := startContainer(t, []Spec{helperSpec("flood", "output", 1, "LINES=20000")}, Options{Output: w, OutputBuffer: 4096})
	waitReady(t, c)
	eventually(t, "drops counted", func() bool { return c.Statistics()[0].OutputDroppedLines > 0 })
	if k := c.Children()[0]; k.DroppedLines == 0 {
		t.Errorf("the child's own count of dropped lines is 0: %+v", k)
	}
	close(w.release)
	dropped := c.Statistics()[0].OutputDroppedLines
	eventually(t, "all lines accounted", func() bool {
		return uint64(strings.Count(w.buf.String(), "flood.0 | "))+c.Statistics()[0].OutputDroppedLines == 20002 // the lines, "to stderr" and "I am ..."
	})
	t.Logf("dropped %d lines", dropped)
	if !strings.Contains(w.buf.String(), "lines dropped: the console was not read fast enough") {
		t.Errorf("the output does not say lines were dropped")
	}
}

func TestNoThreadPerChild(t *testing.T) {
	before := threads(t)
	c := startContainer(t, []Spec{helperSpec("idle", "ready", 50)}, Options{Output: io.Discard})
	waitReady(t, c)
	time.Sleep(100 * time.Millisecond)
	after := threads(t)
	t.Logf("threads: %d before, %d with 50 children", before, after)
	if after-before > 15 {
		t.Errorf("threads grew from %d to %d with 50 children", before, after)
	}
}

func threads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatal("no Threads line")
	return 0
}

func TestControllerKilledLeavesNoChild(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=controller", "GORACE=atexit_sleep_ms=0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := readLine(stdout)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("reading pids: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(line) {
		n, _ := strconv.Atoi(f)
		pids = append(pids, n)
	}
	if len(pids) != 3 {
		t.Fatalf("pids line %q", line)
	}
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("worker %d not alive", pid)
		}
	}
	// The controller started its children from a thread other than its
	// main one; SIGKILL takes the whole process.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	eventually(t, "workers gone after controller SIGKILL", func() bool {
		return !slices.ContainsFunc(pids, alive)
	})
}

func readLine(r interface{ Read([]byte) (int, error) }) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		n, err := r.Read(one)
		if n == 1 {
			if one[0] == '\n' {
				return string(b), nil
			}
			b = append(b, one[0])
		}
		if err != nil {
			return string(b), err
		}
	}
}

func TestRestartChildrenOneAtATime(t *testing.T) {
	s := helperSpec("web", "ready", 3, "READY_DELAY=100ms")
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard})
	waitReady(t, c)
	old := pidsOf(c.Children())
	stop := make(chan struct{})
	minReady := make(chan int, 1)
	go func() {
		least := 3
		for {
			select {
			case <-stop:
				minReady <- least
				return
			default:
			}
			least = min(least, countState(c.Children(), "web", StateReady))
			time.Sleep(time.Millisecond)
		}
	}()
	err := c.RestartChildren(context.Background(), "web", -1)
	close(stop)
	least := <-minReady
	if err != nil {
		t.Fatal(err)
	}
	if least < 2 {
		t.Errorf("at some point only %d of 3 workers were ready", least)
	}
	eventually(t, "old ones stopped", func() bool { return len(c.Children()) == 3 })
	for _, pid := range pidsOf(c.Children()) {
		if slices.Contains(old, pid) {
			t.Errorf("pid %d was not replaced", pid)
		}
	}
	if err := c.RestartChildren(context.Background(), "nope", -1); !errors.Is(err, ErrUnknownService) {
		t.Errorf("unknown service: %v", err)
	}
	if err := c.RestartChildren(context.Background(), "web", 3); !errors.Is(err, ErrUnknownInstance) {
		t.Errorf("unknown instance: %v", err)
	}
}

func TestRestartChildrenFailedReplacementKeepsOld(t *testing.T) {
	s := helperSpec("web", "ready", 1)
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard})
	waitReady(t, c)
	old := c.Children()[0].PID
	// Make the next spawn fail to become ready by pointing it at a crash.
	c.do(func() { c.st.services[0].spec.Env = append(c.st.services[0].spec.Env, helperEnv+"=crash") })
	err := c.RestartChildren(context.Background(), "web", 0)
	if !errors.Is(err, ErrReplacementFailed) {
		t.Fatalf("RestartChildren = %v, want ErrReplacementFailed", err)
	}
	k := c.Children()
	if len(k) != 1 || k[0].PID != old || k[0].State != StateReady {
		t.Errorf("children = %+v, want the old pid %d still ready", k, old)
	}
}

func (p *stopAfterPolicy) ChildExit(c ChildInfo, s ExitStatus) Action {
	if !s.Success() {
		p.n++
	}
	if p.n >= p.limit {
		return StopContainer
	}
	return Continue
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// fdTargets lists this process's descriptors and what they are, for a
// test's failure message.
func fdTargets() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, " %s=%s", e.Name(), target)
	}
	return b.String()
}
