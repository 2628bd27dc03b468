package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunAsPID1 is defect 7 of the process core: as PID 1 of a pid
// namespace (a container), vigil reload and vigil restart work (they
// refused: "no parent process to signal (parent pid 1)"), and a worker's
// child killed with it leaves no zombie.
func TestRunAsPID1(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1)")
	}
	if out, err := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot make a pid namespace here: %v: %s", err, out)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "vigil.toml")
	socket := filepath.Join(dir, "supervisor.ipc")
	write := func(gen string) {
		cfg := shConfig(`sleep 300 & wait`, `env = { GEN = "`+gen+`" }`)
		if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1")
	began := time.Now()
	out := &lockedBuffer{}
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "--kill-child", vigilBin, "run", "-c", config)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		// vigil run itself (PID 1 inside), not unshare, is told to stop.
		for _, pid := range childrenOf(cmd.Process.Pid) {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Errorf("vigil run as PID 1 did not stop within 20s of SIGTERM")
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("vigil run as PID 1:\n%s", out.String())
		}
	}()
	shPIDs := func() []int {
		var pids []int
		for _, c := range opChildren(t, socket) {
			if c.Service == "sh" && c.PID != 0 && c.State == "ready" {
				pids = append(pids, c.PID)
			}
		}
		return pids
	}
	waitUntil(t, "the supervisor's socket", func() bool { _, err := os.Stat(socket); return err == nil })
	waitUntil(t, "the worker ready", func() bool { return len(shPIDs()) == 1 })
	first := shPIDs()[0]
	t.Logf("ready after %v", time.Since(began))

	// vigil restart SERVICE goes through the controller's link.
	if stdout, stderr, code := opRun(t, nil, "restart", "--socket", socket, "sh"); code != 0 {
		t.Errorf("restart sh as PID 1: exit %d: %s%s", code, stdout, stderr)
	}
	waitUntil(t, "sh restarted", func() bool { p := shPIDs(); return len(p) == 1 && p[0] != first })
	second := shPIDs()[0]

	// vigil reload reaches the controller, PID 1, through the supervisor.
	write("2")
	if stdout, stderr, code := opRun(t, nil, "reload", "--socket", socket); code != 0 {
		t.Errorf("reload as PID 1: exit %d: %s%s", code, stdout, stderr)
	}
	waitUntil(t, "sh replaced by the reload", func() bool { p := shPIDs(); return len(p) == 1 && p[0] != second })
	second = shPIDs()[0]
	t.Logf("reloaded after %v", time.Since(began))

	// Kill the worker from outside: its child dies with its process group,
	// is re-parented to vigil (PID 1 inside) and must be reaped.
	var vigil, sh int
	if kids := childrenOf(cmd.Process.Pid); len(kids) == 1 {
		vigil = kids[0]
	}
	waitUntil(t, "one sh worker (the reload's old one gone)", func() bool {
		n := 0
		for _, c := range childrenOf(vigil) {
			if b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c), "comm")); strings.TrimSpace(string(b)) == "sh" {
				sh = c
				n++
			}
		}
		return n == 1
	})
	if vigil == 0 || sh == 0 {
		t.Fatalf("vigil run (%d) or its sh worker (%d) not found from outside", vigil, sh)
	}
	_ = syscall.Kill(sh, syscall.SIGKILL)
	waitUntil(t, "sh replaced after its kill", func() bool { p := shPIDs(); return len(p) == 1 && p[0] != second })
	time.Sleep(300 * time.Millisecond)
	for _, c := range childrenOf(vigil) {
		if stateOf(c) == "Z" {
			t.Errorf("zombie %d under vigil run as PID 1", c)
		}
	}
	if !strings.Contains(out.String(), "msg=reload service=sh change=replaced") {
		t.Errorf("no reload of sh in vigil's output")
	}
}
