package worker_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// buildVigil builds the vigil binary into a temporary directory.
func buildVigil(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build vigil")
	}
	bin := filepath.Join(t.TempDir(), "vigil")
	cmd := exec.Command(goTool, "build", "-o", bin, "github.com/vigild/vigil/cmd/vigil")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build vigil: %v\n%s", err, out)
	}
	return bin
}

// startSupervise runs `vigil supervise --socket socket` and waits until a
// client can connect (a stale socket file refuses).
func startSupervise(t *testing.T, bin, socket string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "supervise", "--socket", socket)
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", socket); err == nil {
			c.Close()
			return cmd
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("vigil supervise did not listen on %s", socket)
	return nil
}

// TestEndToEndSupervisorKilled: `vigil supervise` is killed with SIGKILL
// (its socket file left behind) and started again while two workers run:
// they register again within a few seconds and keep serving.
func TestEndToEndSupervisorKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the vigil binary")
	}
	bin := buildVigil(t)
	socket := filepath.Join(socketDir(t), "supervisor.ipc")
	sup := startSupervise(t, bin, socket)
	c := dialSupervisor(t, socket)
	workers := []*helperProcess{startHelper(t, socket, 0), startHelper(t, socket, 1)}
	ids := make([]string, len(workers))
	for i, h := range workers {
		ids[i] = waitRegistered(t, c, h.pid())
	}
	sup.Process.Kill()
	sup.Wait()
	c.Close()
	if _, err := os.Stat(socket); err != nil {
		t.Logf("socket file after SIGKILL: %v", err)
	}
	began := time.Now()
	startSupervise(t, bin, socket)
	c = dialSupervisor(t, socket)
	for i, h := range workers {
		ids[i] = waitRegistered(t, c, h.pid(), ids[i])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		reply, err := c.Forward(ctx, ids[i], map[string]any{"do": "ping"}, nil)
		cancel()
		if err != nil || !reply.GetBool("pong") {
			t.Errorf("worker %d after the restart: %v %v", i, err, reply)
		}
	}
	took := time.Since(began)
	t.Logf("both workers registered again %v after the new supervisor started", took)
	if took > 10*time.Second {
		t.Errorf("re-registration took %v, want a few seconds", took)
	}
}
