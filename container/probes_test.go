//go:build linux

package container

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/testutil"

	"github.com/vigild/vigil/probe"
)

func init() {
	// http-server knows nothing of vigil: after START_DELAY it serves
	// /healthz on 127.0.0.1:$PORT, 200 until the file $SICK exists, 500
	// then.
	helpers["http-server"] = func([]string) int {
		if d, err := time.ParseDuration(os.Getenv("START_DELAY")); err == nil {
			time.Sleep(d)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
		if err != nil {
			return 1
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			if _, err := os.Stat(os.Getenv("SICK")); err == nil {
				w.WriteHeader(500)
			}
		})
		srv := &http.Server{Handler: mux}
		ctx, stop := signalContext()
		defer stop()
		go func() { <-ctx.Done(); srv.Close() }()
		_ = srv.Serve(l)
		return 0
	}
}

func httpProbe(path string, interval time.Duration) *probe.Spec {
	return &probe.Spec{HTTP: &probe.HTTP{URL: "http://127.0.0.1:${port}" + path}, Interval: interval, Timeout: time.Second, FailureThreshold: 2}
}

// TestReadinessProbeGatesARollingRestart: a program that knows nothing of
// vigil is ready only once its http probe passes, and a restart of its
// service never leaves it without a ready instance, though each instance
// is stopped before its replacement starts (its port).
func TestReadinessProbeGatesARollingRestart(t *testing.T) {
	s := helperSpec("web", "http-server", 2, "START_DELAY=300ms", "SICK="+filepath.Join(t.TempDir(), "sick"))
	s.Port = testutil.FreePorts(t, 2)
	s.Readiness, s.ReadinessProbe = ReadyProbe, httpProbe("/healthz", 50*time.Millisecond)
	start := time.Now()
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard})
	waitReady(t, c)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("ready after %v, before the server listened (300ms)", d)
	}
	least := watchLeast(c, "web")
	err := c.RestartChildren(context.Background(), "web", -1)
	if least() < 1 {
		t.Errorf("at some moment no instance was ready during the restart")
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestHealthProbeFailureKills: a ready child whose health probe fails
// (FailureThreshold in a row) is killed and restarted, as for a health
// clock.
func TestHealthProbeFailureKills(t *testing.T) {
	sick := filepath.Join(t.TempDir(), "sick")
	s := helperSpec("web", "http-server", 1, "SICK="+sick)
	s.Port = testutil.FreePorts(t, 1)
	s.Readiness, s.ReadinessProbe = ReadyProbe, httpProbe("/healthz", 50*time.Millisecond)
	s.HealthProbe = httpProbe("/healthz", 50*time.Millisecond)
	pol := new(recordingPolicy)
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard, Policy: pol})
	waitReady(t, c)
	first := c.Children()[0].PID
	if err := os.WriteFile(sick, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "killed for its health probe", func() bool { return pol.count("health") >= 1 })
	os.Remove(sick)
	eventually(t, "restarted and ready", func() bool {
		k := c.Children()[0]
		return k.PID != first && k.PID != 0 && k.State == StateReady
	})
	if k := c.Children()[0]; k.LastExit == nil || !k.LastExit.Killed() {
		t.Errorf("child = %+v, want its predecessor killed", k)
	}
}

// TestExecProbe: an exec probe runs a real command (through the spawner
// threads) until it exits 0.
func TestExecProbe(t *testing.T) {
	dir := t.TempDir()
	s := helperSpec("w", "silent", 1)
	s.Readiness = ReadyProbe
	s.ReadinessProbe = &probe.Spec{Exec: &probe.Exec{Argv: []string{"sh", "-c", "test -f ok"}, Dir: dir}, Interval: 50 * time.Millisecond, Timeout: time.Second}
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard})
	time.Sleep(300 * time.Millisecond)
	if st := c.Children()[0].State; st != StateStarting {
		t.Fatalf("state %v before the probe can pass", st)
	}
	if err := os.WriteFile(filepath.Join(dir, "ok"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c)
}
