package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/testutil"
)

// TestProbeGatesRollingRestart: a Python web server that knows nothing of
// vigil, on a port per instance, is ready when its http probe passes; a
// restart of its service (stop-then-start per instance: the port) never
// leaves it without a ready instance.
func TestProbeGatesRollingRestart(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	base := testutil.FreePorts(t, 2)
	r := startRun(t, fmt.Sprintf(`
[services.py]
command = [%q, "-m", "http.server", "--bind", "127.0.0.1", "${port}"]
count = 2
port = %d
supervised = false
graceful_stop = "2s"
readiness = { http = "http://127.0.0.1:${port}/", interval = "100ms", timeout = "1s" }
`, py, base))
	ready := func() (n int, pids []int, err error) {
		children, err := statusChildren(r.socket)
		for _, c := range children {
			if c.Service == "py" && c.State == "ready" {
				n++
				pids = append(pids, c.PID)
			}
		}
		return n, pids, err
	}
	waitUntil(t, "both python servers ready", func() bool {
		if _, err := os.Stat(r.socket); err != nil {
			return false
		}
		n, _, err := ready()
		return err == nil && n == 2
	})
	_, before, err := ready()
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		least   = 2
		pollErr error
	)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, _, err := ready()
			mu.Lock()
			if err != nil {
				pollErr = err
			}
			least = min(least, n)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	stdout, stderr, code := opRun(t, nil, "restart", "--socket", r.socket, "py")
	close(stop)
	<-done
	if code != 0 {
		t.Fatalf("vigil restart py: exit %d: %s%s", code, stdout, stderr)
	}
	if pollErr != nil {
		t.Errorf("status during the restart: %v", pollErr)
	}
	if least < 1 {
		t.Errorf("at some moment no python server was ready during the restart")
	}
	_, after, err := ready()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range after {
		for _, q := range before {
			if p == q {
				t.Errorf("pid %d was not restarted (before %v, after %v)", p, before, after)
			}
		}
	}
	if !strings.Contains(stdout, "py") {
		t.Errorf("restart said: %s", stdout)
	}
}
