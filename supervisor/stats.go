package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigild/vigil/rpc"
)

// Outcomes of a call, as Stats counts them.
const (
	OutcomeOK     = "ok"     // finished
	OutcomeFailed = "failed" // a failed reply (a worker's failure relayed included)
	OutcomeDenied = "denied" // refused: the peer lacks the role
)

// ForwardBounds are the upper bounds, in seconds, of the buckets of
// Stats.Forward.
var ForwardBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Stats are the server's counts since it started, for metrics.
type Stats struct {
	// Connections are the socket connections being served now.
	Connections int64
	// Registrations are the registered connections now.
	Registrations int
	// Refused counts the connections closed at once because
	// MaxConnections were being served.
	Refused uint64
	// Calls count the calls served, by operation and outcome, sorted.
	Calls []CallCount
	// Forward is the time forwarded operations took, from the call to the
	// target's final reply, by the target's kind: "worker" or
	// "controller" (its operations: children, logs, restart_children, ...).
	Forward map[string]Histogram
}

// CallCount counts the calls of one operation with one outcome.
type CallCount struct {
	// Operation is the supervisor's operation ("register", "status",
	// "forward", "restart").
	Operation string
	// Outcome is OutcomeOK, OutcomeFailed or OutcomeDenied.
	Outcome string
	// Count is how many.
	Count uint64
}

// Histogram is a cumulative histogram of durations in seconds.
type Histogram struct {
	// Bounds are the buckets' upper bounds, ascending (+Inf is implied).
	Bounds []float64
	// Counts are the values at most each bound: cumulative.
	Counts []uint64
	// Count is the number of values.
	Count uint64
	// Sum is their sum.
	Sum float64
}

// serverStats is the live record behind Stats.
type serverStats struct {
	refused atomic.Uint64

	mu      sync.Mutex
	calls   map[[2]string]uint64
	forward map[string]*histogram
}

// histogram counts durations into ForwardBounds, not cumulatively.
type histogram struct {
	counts []uint64 // +Inf last
	count  uint64
	sum    float64
}

func (h *histogram) observe(seconds float64) {
	i, _ := slices.BinarySearch(ForwardBounds, seconds)
	h.counts[i]++
	h.count++
	h.sum += seconds
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Bounds: ForwardBounds, Counts: make([]uint64, len(ForwardBounds)), Count: h.count, Sum: h.sum}
	var n uint64
	for i := range ForwardBounds {
		n += h.counts[i]
		out.Counts[i] = n
	}
	return out
}

func (st *serverStats) call(op, outcome string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.calls == nil {
		st.calls = make(map[[2]string]uint64)
	}
	st.calls[[2]string{op, outcome}]++
}

func (st *serverStats) forwarded(target string, d time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.forward == nil {
		st.forward = make(map[string]*histogram)
	}
	h := st.forward[target]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(ForwardBounds)+1)}
		st.forward[target] = h
	}
	h.observe(d.Seconds())
}

// counted wraps an operation's handler to count its calls by outcome.
func (s *Server) counted(op string, h rpc.Handler) rpc.Handler {
	return func(ctx context.Context, call *rpc.Call) error {
		err := h(ctx, call)
		outcome := OutcomeOK
		var re *rpc.Error
		switch {
		case errors.As(err, &re) && re.Class == "PermissionError":
			outcome = OutcomeDenied
		case err != nil || call.Failed():
			outcome = OutcomeFailed
		}
		s.stats.call(op, outcome)
		return err
	}
}

// Stats returns the server's counts.
func (s *Server) Stats() Stats {
	s.init()
	out := Stats{Connections: s.active.Load(), Refused: s.stats.refused.Load(), Forward: map[string]Histogram{}}
	s.mu.Lock()
	out.Registrations = len(s.byID)
	s.mu.Unlock()
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	for k, n := range s.stats.calls {
		out.Calls = append(out.Calls, CallCount{Operation: k[0], Outcome: k[1], Count: n})
	}
	slices.SortFunc(out.Calls, func(a, b CallCount) int {
		if c := strings.Compare(a.Operation, b.Operation); c != 0 {
			return c
		}
		return strings.Compare(a.Outcome, b.Outcome)
	})
	for target, h := range s.stats.forward {
		out.Forward[target] = h.snapshot()
	}
	return out
}

// ErrNoController is returned by [Server.CallController] when no
// controller is registered.
var ErrNoController = errors.New("no controller is registered")

// CallController calls an operation of the registered controller (the
// first, if several registered) and returns its final reply, as the
// status call asks it for its children: a failed reply is an
// *rpc.RemoteError.
func (s *Server) CallController(ctx context.Context, operation string, params any) (*rpc.Message, error) {
	s.init()
	list := s.controllerList()
	if len(list) == 0 {
		return nil, ErrNoController
	}
	c := list[0]
	reply, err := c.Call(ctx, operation, params, nil)
	if err != nil {
		return nil, fmt.Errorf("controller (pid %d) %s: %w", c.ProcessID(), operation, err)
	}
	return reply, nil
}
