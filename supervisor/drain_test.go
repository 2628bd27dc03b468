package supervisor

import (
	"context"
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
