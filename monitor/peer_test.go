package monitor

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigild/vigil/supervisor"
)

// A registration whose peer the server cannot name (here: a listener that
// gives no peer credentials, as a peer outside the supervisor's pid
// namespace gives pid 0) is not verified, and the monitor never acts on the
// process it names, however far over the limit.
func TestUnverifiedRegistrationIsNotTracked(t *testing.T) {
	b := base(t)
	logger, logs := testLogger()
	m := NewMemory(fast(MemoryOptions{MaximumSizeLimit: (b + 10) * mib, Logger: logger}))
	path := filepath.Join(t.TempDir(), "plain.ipc")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &supervisor.Server{Monitors: []supervisor.Monitor{m}, Logger: logger}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })

	w := startWorker(t, path, "grower", growth{start: 40})
	// Several full checks pass; the worker, 30 MiB over its limit, lives.
	time.Sleep(10 * fast(MemoryOptions{}).Interval)
	if !w.alive() {
		t.Fatalf("the monitor stopped the process of an unverified registration\n%s", logs)
	}
	if !strings.Contains(logs.String(), "not tracking an unverified registration") {
		t.Errorf("the refusal is not logged:\n%s", logs)
	}
	if c := srv.Connections(); len(c) != 1 || c[0].Verified() || c[0].State()["verified"] != false {
		t.Errorf("registration: %d, verified %v", len(c), len(c) == 1 && c[0].Verified())
	}
}
