package supervisor

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// slowMonitor answers status after a pause.
type slowMonitor struct{ pause time.Duration }

func (m slowMonitor) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (slowMonitor) Register(*Connection)            {}
func (slowMonitor) Remove(*Connection)              {}
func (m slowMonitor) Status(ctx context.Context) (any, error) {
	select {
	case <-time.After(m.pause):
		return map[string]any{"slow": true}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestDrainAnswersWhatWasAsked: a supervisor told to stop with a
// DrainTimeout answers the calls under way, closes the idle connections
// promptly, and returns.
func TestDrainAnswersWhatWasAsked(t *testing.T) {
	for _, drain := range []time.Duration{5 * time.Second} {
		ts := startServer(t, &Server{Monitors: []Monitor{slowMonitor{pause: 500 * time.Millisecond}}, DrainTimeout: drain}, ListenOptions{})
		idle := dial(t, ts.path, nil)
		busy := dial(t, ts.path, nil)
		done := make(chan error, 1)
		go func() {
			_, err := busy.Status(ctxT(t))
			done <- err
		}()
		time.Sleep(100 * time.Millisecond) // the call is under way
		start := time.Now()
		ts.stop()
		took := time.Since(start)
		err := <-done
		switch {
		case drain > 0 && err != nil:
			t.Errorf("with a drain, the call under way failed: %v", err)
		case drain > 0 && took > 2*time.Second:
			t.Errorf("the drain took %v: the idle connection held it", took)
		}
		select {
		case <-idle.Done():
		case <-time.After(5 * time.Second):
			t.Errorf("drain %v: the idle connection was not closed", drain)
		}
	}
}

// TestDrainClosesConnectionsAfterLongLines: a connection whose last line
// came in more than one read (over the 1 KiB read buffer: a registration
// with some state, the controller's replies) kept its "part of a line
// read" mark once the line was routed, and so never looked idle: a
// supervisor being replaced held it, the controller's among them, for the
// whole DrainTimeout, and `vigil status` showed no controller and no
// workers for those 5 s after `vigil restart supervisor`.
func TestDrainClosesConnectionsAfterLongLines(t *testing.T) {
	ts := startServer(t, &Server{DrainTimeout: 5 * time.Second}, ListenOptions{})
	raw := dialRaw(t, ts.path)
	raw.send(`{"id":2,"do":"register","state":{"process_id":` + strconv.Itoa(os.Getpid()) + `,"name":"w","pad":"` + strings.Repeat("x", 3000) + `"}}` + "\n")
	if m := raw.recv(5 * time.Second); m == nil || m["id"] != float64(2) {
		t.Fatalf("register: %v", m)
	}
	time.Sleep(2 * drainQuiet) // quiet since
	start := time.Now()
	ts.stop()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the drain took %v: the idle connection held it", took)
	}
	if m := raw.recv(5 * time.Second); m != nil {
		t.Errorf("after the drain: %v", m)
	}
}
