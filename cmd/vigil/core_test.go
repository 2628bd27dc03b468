package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shConfig is a vigil.toml with one service running sh -c script, not
// supervised, ready once started.
func shConfig(script string, extra string) string {
	return fmt.Sprintf(`
[services.sh]
command = ["sh", "-c", %q]
count = 1
readiness = "started"
supervised = false
graceful_stop = "1s"
%s`, script, extra)
}

// shUp: the sh service's one worker and the supervisor are ready.
func shUp(tr tree) bool {
	return len(tr.pids("sh", "ready")) == 1 && len(tr.pids("sh", "")) == 1 && len(tr.pids(SupervisorService, "ready")) == 1
}

// readPID waits for a pid written to path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitUntil(t, "a pid in "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	return pid
}

// procGone reports whether pid no longer exists, not even as a zombie.
func procGone(pid int) bool {
	_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	return errors.Is(err, os.ErrNotExist)
}

// childrenOf lists pid's children, from every thread's children file.
func childrenOf(pid int) []int {
	tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	var out []int
	for _, task := range tasks {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", task.Name(), "children"))
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// guardOf is the guard among the children of vigil run's process pid
// (vigil guard), failing t if there is none.
func guardOf(t *testing.T, pid int) int {
	t.Helper()
	for _, c := range childrenOf(pid) {
		if b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c), "cmdline")); strings.Contains(string(b), "\x00guard\x00") {
			return c
		}
	}
	t.Fatal("no guard among vigil run's children")
	return 0
}

// stateOf is pid's state letter (R, S, Z, ...), "" when gone.
func stateOf(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// TestRunSecondRunRefused: a second vigil run on the same configuration
// ends at once with one clear line naming the socket and the first run.
func TestRunSecondRunRefused(t *testing.T) {
	r := startRun(t, shConfig("exec sleep 300", ""))
	r.waitTree("the worker", shUp)
	cmd := exec.Command(vigilBin, "run", "-c", r.config)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailed {
		t.Fatalf("second vigil run: %v: %s", err, out)
	}
	want := fmt.Sprintf("vigil: a supervisor is already listening on %s (vigil run pid %d)\n", r.socket, r.cmd.Process.Pid)
	if string(out) != want {
		t.Errorf("second vigil run said\n%q\nwant\n%q", out, want)
	}
	if tr, ok := r.status(); !ok || !shUp(tr) {
		t.Errorf("the first run is hurt: %+v", tr)
	}
}

// TestRunKilledLeavesNothing is defect 5 of the process core: after
// SIGKILL of vigil run, a worker's own child (not in reach of the
// parent-death signal) does not survive.
func TestRunKilledLeavesNothing(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "sleep.pid")
	r := startRun(t, shConfig(`sleep 300 & echo $! > `+pidfile+`; wait`, ""))
	r.waitTree("the worker", shUp)
	sleeper := readPID(t, pidfile)
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-r.exited
	r.exited <- nil // for the cleanup
	waitUntil(t, "the worker's child gone after vigil run was killed", func() bool { return procGone(sleeper) })
}

// After SIGKILL of vigil run, its guard stops even a descendant that left
// its worker's session and environment behind (setsid env -i), which only
// a cgroup finds: whether the workers run in cgroups of their own or, with
// own_cgroup = false, in the run's.
func TestRunKilledLeavesNothingInItsCgroup(t *testing.T) {
	for _, own := range []bool{true, false} {
		t.Run(fmt.Sprintf("own_cgroup=%v", own), func(t *testing.T) {
			pidfile := filepath.Join(t.TempDir(), "sleep.pid")
			r := startRun(t, shConfig(`setsid env -i sleep 300 & echo $! > `+pidfile+`; wait`, fmt.Sprintf("own_cgroup = %v\n", own)))
			r.waitTree("the worker", shUp)
			if !strings.Contains(r.out.String(), `tracking="cgroup `) {
				t.Skipf("no cgroup tracking here:\n%s", r.out.String())
			}
			sleeper := readPID(t, pidfile)
			t.Cleanup(func() { _ = syscall.Kill(sleeper, syscall.SIGKILL) })
			if err := r.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-r.exited
			r.exited <- nil // for the cleanup
			waitUntil(t, "the escaped descendant gone after vigil run was killed", func() bool { return procGone(sleeper) })
		})
	}
}

// TestRunAfterKilledRunStopsLeftovers: with both vigil run and its guard
// killed, the next vigil run on the same configuration finds what is left
// of the dead run, stops it, and says so.
func TestRunAfterKilledRunStopsLeftovers(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "sleep.pid")
	// setsid: out of the worker's process group, and its own session.
	cfg := shConfig(`setsid sleep 300 & echo $! > `+pidfile+`; wait`, "")
	r := startRun(t, cfg)
	r.waitTree("the worker", shUp)
	sleeper := readPID(t, pidfile)
	_ = syscall.Kill(guardOf(t, r.cmd.Process.Pid), syscall.SIGKILL)
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.exited <- nil
	time.Sleep(200 * time.Millisecond)
	if procGone(sleeper) {
		t.Fatal("the sleeper died with vigil run and its guard: nothing left to test")
	}
	r2 := startRunFile(t, r.config, r.socket)
	r2.waitTree("the new worker", shUp)
	waitUntil(t, "the dead run's sleeper stopped", func() bool { return procGone(sleeper) })
	if !strings.Contains(r2.out.String(), "stopped processes left by a previous vigil run that was killed") {
		t.Errorf("the new run did not say it stopped leftovers:\n%s", r2.out.String())
	}
}

// TestRunReapsLikeInit is defect 3 of the process core: a worker's
// children, killed with its process group when it dies, are re-parented
// to vigil run and must be reaped (no zombie), and one that left the
// group is stopped.
func TestRunReapsLikeInit(t *testing.T) {
	dir := t.TempDir()
	grouped, escaped := filepath.Join(dir, "grouped.pid"), filepath.Join(dir, "escaped.pid")
	r := startRun(t, shConfig(`sleep 300 & echo $! > `+grouped+`; setsid sleep 301 & echo $! > `+escaped+`; wait`, ""))
	tr := r.waitTree("the worker", shUp)
	pids := []int{readPID(t, grouped), readPID(t, escaped)}
	if err := syscall.Kill(tr.pids("sh", "")[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		waitUntil(t, fmt.Sprintf("%d gone, not a zombie", pid), func() bool { return procGone(pid) })
	}
	r.waitTree("the replacement", shUp)
	for _, c := range childrenOf(r.cmd.Process.Pid) {
		if stateOf(c) == "Z" {
			t.Errorf("zombie child %d of vigil run", c)
		}
	}
}

// TestRunSaysWhatAWorkerLeftBehind: a worker that puts itself in the
// background (forks, and its first process exits 0, as a daemon does) was
// restarted in a loop with nothing said but "exit 0": what it left was
// killed through its cgroup in silence. vigil run now says, at once, what
// it left and that it stopped it, naming the child; not when it was vigil
// that stopped the worker (a stubborn descendant killed with it then is
// no news).
func TestRunSaysWhatAWorkerLeftBehind(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "daemon.pid")
	// It exits once its daemon has left its session and process group
	// (which the worker's own exit handling kills).
	daemonize := `setsid sh -c 'echo $$ > ` + pidfile + `.tmp && mv ` + pidfile + `.tmp ` + pidfile + ` && exec sleep 300' & while [ ! -s ` + pidfile + ` ]; do sleep 0.01; done; exit 0`
	r := startRun(t, shConfig(daemonize, "restart = false\n")+`
[services.stubborn]
command = ["sh", "-c", "trap '' INT TERM; setsid sleep 301 & exec sleep 302"]
count = 1
readiness = "started"
supervised = false
graceful_stop = "100ms"
`)
	waitUntil(t, "the daemon's process", func() bool { _, err := os.Stat(pidfile); return err == nil })
	if !strings.Contains(r.out.String(), `tracking="cgroup `) {
		t.Skipf("no cgroup tracking here:\n%s", r.out.String())
	}
	daemon := readPID(t, pidfile)
	t.Cleanup(func() { _ = syscall.Kill(daemon, syscall.SIGKILL) })
	waitUntil(t, "the daemon stopped with its worker", func() bool { return procGone(daemon) })
	waitUntil(t, "a word of what it left", func() bool {
		return strings.Contains(r.out.String(), "left processes running") && strings.Contains(r.out.String(), "child=sh.0")
	})
	if !strings.Contains(r.out.String(), fmt.Sprintf("(pid %d)", daemon)) { // sh, or sleep once exec'd
		t.Errorf("the message does not name the process left:\n%s", r.out.String())
	}
	// Stopped by vigil, the stubborn worker's sleep 301 (it ignores
	// SIGINT and SIGTERM, and left the worker's process group, which the
	// stop's SIGKILL reaches) is killed with it, without a warning.
	r.waitTree("the stubborn worker", func(tr tree) bool { return len(tr.pids("stubborn", "ready")) == 1 })
	if _, stderr, code := opRun(t, nil, "stop", "--socket", r.socket, "stubborn"); code != 0 {
		t.Fatalf("vigil stop stubborn: exit %d: %s", code, stderr)
	}
	waitUntil(t, "the stubborn worker stopped", func() bool {
		return strings.Contains(r.out.String(), "child=stubborn.0") && strings.Contains(r.out.String(), "signal killed")
	})
	time.Sleep(200 * time.Millisecond) // the subreaper's scan
	if n := strings.Count(r.out.String(), "left processes running"); n != 1 {
		t.Errorf("said %d times that a worker left processes running, want once:\n%s", n, r.out.String())
	}
}

// TestRunPausedIsNoHealthFailure: the whole tree paused (docker pause, a
// frozen cgroup, a suspended VM, SIGSTOP of the group) and resumed: the
// workers' clocks ran on while none of them, nor vigil, could run, and
// vigil killed healthy workers for a health check timeout at once on
// resuming. A clock that runs out long after its deadline says vigil was
// not running: every child's clock starts again instead.
func TestRunPausedIsNoHealthFailure(t *testing.T) {
	r := startRun(t, `
[services.hb]
command = ["sh", "-c", "echo '{\"ready\":true}' >&3; while true; do echo '{\"healthy\":true}' >&3; sleep 0.2; done"]
count = 3
health_check_timeout = "1s"
supervised = false
`)
	tr := r.waitTree("3 workers", func(tr tree) bool { return len(tr.pids("hb", "ready")) == 3 })
	workers := tr.pids("hb", "")
	paused := append(childrenOf(r.cmd.Process.Pid), r.cmd.Process.Pid)
	for _, pid := range paused {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	time.Sleep(4 * time.Second) // past the deadlines by more than the check interval and a second
	for _, pid := range paused {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	time.Sleep(2 * time.Second) // two timeouts: a hung worker would be killed by now
	if strings.Contains(r.out.String(), "failed its health check") {
		t.Errorf("workers killed after the pause:\n%s", r.out.String())
	}
	tr = r.waitTree("3 workers", func(tr tree) bool { return len(tr.pids("hb", "ready")) == 3 })
	if got := tr.pids("hb", ""); !equalInts(got, workers) {
		t.Errorf("the workers changed across the pause: %v, then %v", workers, got)
	}
}

// TestRunStopsAtOnceWhenAskedTwice: an operator's second Ctrl-C (or
// SIGTERM) while vigil run stops gracefully did nothing: a worker that
// ignores the stop signals held everything for its graceful_stop (30 s
// here), twice over. Asked again, vigil run kills what is left at once.
func TestRunStopsAtOnceWhenAskedTwice(t *testing.T) {
	r := startRun(t, strings.Replace(shConfig(`trap '' INT TERM; while true; do sleep 0.1; done`, ""), `graceful_stop = "1s"`, `graceful_stop = "30s"`, 1))
	tr := r.waitTree("the worker", shUp)
	worker := tr.pids("sh", "")[0]
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the graceful stop under way", func() bool { return strings.Contains(r.out.String(), "Stopping...") })
	start := time.Now()
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.exited:
		r.exited <- err // for the cleanup
		if err != nil {
			t.Errorf("vigil run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("vigil run still stopping 10 s after it was asked again:\n%s", r.out.String())
	}
	t.Logf("stopped %v after the second signal", time.Since(start).Round(time.Millisecond))
	waitUntil(t, "the worker gone", func() bool { return procGone(worker) })
	if !strings.Contains(r.out.String(), "at once") {
		t.Errorf("vigil run did not say it stopped at once:\n%s", r.out.String())
	}
}
