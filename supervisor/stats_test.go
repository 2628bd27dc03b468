package supervisor

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/vigild/vigil/rpc"
)

// callCount returns the count of an operation's calls with an outcome.
func callCount(st Stats, op, outcome string) uint64 {
	for _, c := range st.Calls {
		if c.Operation == op && c.Outcome == outcome {
			return c.Count
		}
	}
	return 0
}

// TestStatsCountCallsAndForwards: the calls are counted by operation and
// outcome (a worker's failure relayed is a failed forward, a registration
// as controller by another process is denied), the forwards timed by
// target, and the connections and registrations counted as they are now.
func TestStatsCountCallsAndForwards(t *testing.T) {
	ts := startServer(t, &Server{ParentPID: 1}, ListenOptions{})
	_, id := register(t, ts.path, map[string]any{"process_id": os.Getpid(), "name": "web"})
	op := dial(t, ts.path, nil)
	for range 2 {
		if _, err := op.Forward(ctxT(t), id, map[string]any{"do": "echo", "value": 1}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := op.Forward(ctxT(t), id, map[string]any{"do": "fail"}, nil); err == nil {
		t.Fatal("the failing operation did not fail")
	}
	if _, err := op.Status(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	impostor := dial(t, ts.path, nil)
	_, err := impostor.Register(ctxT(t), map[string]any{"role": "controller"})
	var re *rpc.RemoteError
	if !errors.As(err, &re) || re.Class != "PermissionError" {
		t.Fatalf("an impostor registering as controller: %v", err)
	}

	wants := []struct {
		op, outcome string
		n           uint64
	}{
		{"register", OutcomeOK, 1}, {"register", OutcomeDenied, 1},
		{"forward", OutcomeOK, 2}, {"forward", OutcomeFailed, 1},
		{"status", OutcomeOK, 1}, {"restart", OutcomeOK, 0},
	}
	// A call is counted when its handler returns, just after its reply
	// went out: the client may see the reply first.
	st := ts.Stats()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); st = ts.Stats() {
		all := true
		for _, want := range wants {
			all = all && callCount(st, want.op, want.outcome) == want.n
		}
		if all {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for _, want := range wants {
		if got := callCount(st, want.op, want.outcome); got != want.n {
			t.Errorf("calls of %s %s: %d, want %d (all: %+v)", want.op, want.outcome, got, want.n, st.Calls)
		}
	}
	h, ok := st.Forward["worker"]
	if !ok || h.Count != 3 || h.Counts[len(h.Counts)-1] > 3 || h.Sum <= 0 {
		t.Errorf("forward histogram of workers: %+v (present %v), want 3 forwards", h, ok)
	}
	if _, ok := st.Forward["controller"]; ok {
		t.Errorf("a forward to the controller counted, with none made")
	}
	if st.Registrations != 1 {
		t.Errorf("registrations %d, want 1", st.Registrations)
	}
	if st.Connections != 3 {
		t.Errorf("connections %d, want 3 (the worker, the operator, the impostor)", st.Connections)
	}
}

// TestCallControllerWithoutController: ErrNoController when none is
// registered.
func TestCallControllerWithoutController(t *testing.T) {
	ts := startServer(t, &Server{}, ListenOptions{})
	if _, err := ts.CallController(context.Background(), "children", nil); !errors.Is(err, ErrNoController) {
		t.Errorf("CallController with no controller: %v, want ErrNoController", err)
	}
}

// TestCallControllerAsksTheController: the registered controller's reply
// comes back whole.
func TestCallControllerAsksTheController(t *testing.T) {
	ts := startServer(t, &Server{ParentPID: os.Getpid()}, ListenOptions{})
	ctrl := dial(t, ts.path, rpc.Handlers{"children": func(ctx context.Context, call *rpc.Call) error {
		return call.Finish(map[string]any{"children": []map[string]any{{"service": "web", "pid": 42}}})
	}})
	if _, err := ctrl.Register(ctxT(t), map[string]any{"role": "controller", "process_id": os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	reply, err := ts.CallController(ctxT(t), "children", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := reply.Get("children"); string(got) != `[{"pid":42,"service":"web"}]` {
		t.Errorf("children: %s", got)
	}
}
