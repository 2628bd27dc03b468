package worker_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/notify"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/worker/workertest"
)

// TestPythonWorker runs examples/quickstart/pyworker.py against a real
// supervisor: it reports ready through the pipe, registers, answers "ping"
// through forward, re-registers after a supervisor restart, and stops
// cleanly on SIGTERM.
func TestPythonWorker(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	script, _ := filepath.Abs("../examples/quickstart/pyworker.py")
	socket := filepath.Join(socketDir(t), "supervisor.ipc")
	stop := runSupervisor(t, socket)
	c := dialSupervisor(t, socket)
	notes := workertest.NewNotifyPipe(t)
	cmd := exec.Command(python, script)
	cmd.Env = append(os.Environ(), "VIGIL_SUPERVISOR_SOCKET="+socket, "VIGIL_SERVICE=py", "VIGIL_INSTANCE=1", notes.Env())
	cmd.ExtraFiles = []*os.File{notes.ChildFile()}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	notes.CloseChildFile()
	waited := false
	defer func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := notes.WaitReady(ctx); err != nil {
		t.Fatalf("no ready: %v\n%s", err, stderr)
	}
	id := waitRegistered(t, c, cmd.Process.Pid)
	reply := forward(t, c, id, map[string]any{"do": "ping"}, nil)
	if !reply.GetBool("pong") {
		t.Errorf("ping = %s", reply)
	}
	_, err = c.Forward(ctx, id, map[string]any{"do": "thread_dump"}, nil)
	var re *rpc.RemoteError
	if !errors.As(err, &re) || re.Class != "NoMethodError" {
		t.Errorf("unknown operation: %v", err)
	}
	if err := notes.WaitHealthy(ctx); err != nil {
		t.Errorf("no healthy: %v", err)
	}

	c.Close()
	stop()
	runSupervisor(t, socket)
	c = dialSupervisor(t, socket)
	id = waitRegistered(t, c, cmd.Process.Pid, id)
	if reply := forward(t, c, id, map[string]any{"do": "ping"}, nil); !reply.GetBool("pong") {
		t.Errorf("ping after restart = %s", reply)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	waited = true
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr)
	}
	if _, err := notes.Wait(ctx, func(m notify.Message) bool { return m.Stopping }); err != nil {
		t.Errorf("no stopping: %v", err)
	}
	if strings.Contains(stderr.String(), "Traceback") {
		t.Errorf("python failed:\n%s", stderr)
	}
}
