package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The operator's commands against a real `vigil run` with the example Go
// worker: status, a restart of one worker and of the service, a heap dump,
// the probes and a reload.
func TestOpWithVigilRun(t *testing.T) {
	goworker := filepath.Join(binDir, "goworker")
	if _, err := os.Stat(goworker); err != nil {
		t.Skip("examples/quickstart/goworker is not built in this tree")
	}
	t.Parallel()
	dir, err := os.MkdirTemp("", "vop-run")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	config := filepath.Join(dir, "vigil.toml")
	err = os.WriteFile(config, []byte(fmt.Sprintf(`[supervisor]
socket = "supervisor.ipc"

[services.web]
command = [%q]
count = 2
env = { PORT = "0" }
startup_timeout = "10s"
graceful_stop = "5s"
`, goworker)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "supervisor.ipc")
	run := exec.Command(vigilBin, "run", "-c", config)
	run.Env = append(os.Environ(), EnvSupervisorSocket+"=")
	if os.Getenv("OP_VERBOSE") != "" {
		run.Stdout, run.Stderr = os.Stderr, os.Stderr
	}
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		run.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { run.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	waitReady := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			stdout, stderr, code := opRun(t, nil, "probe", "ready", "--socket", socket)
			if code == 0 && strings.Contains(stdout, "web 2/2") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not ready after 30s: %s%s", what, stdout, stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReady("start")

	stdout, stderr, code := opRun(t, nil, "status", "--socket", socket)
	if code != 0 || !strings.Contains(stdout, "web: 2 workers (2 ready)") {
		t.Fatalf("status: exit %d: %s%s", code, stdout, stderr)
	}
	before := opChildren(t, socket)
	if _, stderr, code := opRun(t, nil, "restart", "--socket", socket, "web.1"); code != 0 {
		t.Fatalf("restart web.1: exit %d: %s", code, stderr)
	}
	mid := opChildren(t, socket)
	if mid["web.1"].PID == before["web.1"].PID || mid["web.0"].PID != before["web.0"].PID {
		t.Errorf("restart web.1: before %v, after %v", before, mid)
	}
	stdout, stderr, code = opRun(t, nil, "restart", "--socket", socket, "web")
	if code != 0 || !strings.HasPrefix(stdout, "restarted service web: 2 workers, one at a time\n") {
		t.Fatalf("restart web: exit %d: %s%s", code, stdout, stderr)
	}
	heap := filepath.Join(dir, "heap.pprof")
	if _, stderr, code := opRun(t, nil, "dump", "heap", "--socket", socket, "web.0", "-o", heap); code != 0 {
		t.Fatalf("dump heap: exit %d: %s", code, stderr)
	}
	opParseProfile(t, heap, "inuse_space")
	if stdout, stderr, code := opRun(t, nil, "probe", "healthy", "--socket", socket); code != 0 {
		t.Errorf("probe healthy: exit %d: %s%s", code, stdout, stderr)
	}

	// reload: the configuration changed, so web is replaced blue/green and
	// every worker's pid changes.
	old := opChildren(t, socket)
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte(strings.Replace(string(data), `PORT = "0"`, `PORT = "0", GENERATION = "2"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := opRun(t, nil, "reload", "--socket", socket); code != 0 {
		t.Fatalf("reload: exit %d: %s", code, stderr)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		now := opChildren(t, socket)
		if now["web.0"].PID != old["web.0"].PID && now["web.1"].PID != old["web.1"].PID &&
			now["web.0"].State == "ready" && now["web.1"].State == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reload: pids %v, then %v", old, now)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
