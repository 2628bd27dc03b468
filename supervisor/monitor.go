package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// Monitor watches the registered workers (the memory monitor and the
// process monitor of package monitor are Monitors).
//
// Run is called once, in its own goroutine, when the server starts, and
// must return when ctx ends. Register and Remove are called one at a time,
// from a single goroutine, in the order the connections came and went; they
// should return quickly. Status is called for each status request and
// returns a value that marshals to a JSON object, such as
// {"memory_monitor": {...}}, sent as one intermediate reply.
//
// An error or a panic in any of them is logged and contained: it never
// stops the server, fails a registration, or fails a status call.
type Monitor interface {
	Run(ctx context.Context) error
	Register(conn *Connection)
	Remove(conn *Connection)
	Status(ctx context.Context) (any, error)
}

// monitorEvent is one registration or removal to deliver to the monitors.
type monitorEvent struct {
	conn     *Connection
	register bool
}

// eventQueue delivers registrations and removals to the monitors in order,
// from one goroutine, without ever blocking the connection that caused them.
type eventQueue struct {
	mu     sync.Mutex
	events []monitorEvent
	signal chan struct{}
}

func newEventQueue() *eventQueue {
	return &eventQueue{signal: make(chan struct{}, 1)}
}

func (q *eventQueue) push(e monitorEvent) {
	q.mu.Lock()
	q.events = append(q.events, e)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *eventQueue) take() []monitorEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.events
	q.events = nil
	return e
}

// run delivers events until ctx ends, then delivers what is left, so that
// every registration a monitor saw is followed by its removal.
func (q *eventQueue) run(ctx context.Context, monitors []Monitor, logger *slog.Logger) {
	deliver := func() {
		for _, e := range q.take() {
			for _, m := range monitors {
				if e.register {
					contain(logger, "Error while registering process!", m, func() { m.Register(e.conn) })
				} else {
					contain(logger, "Error while removing process!", m, func() { m.Remove(e.conn) })
				}
			}
		}
	}
	for {
		select {
		case <-q.signal:
			deliver()
		case <-ctx.Done():
			deliver()
			return
		}
	}
}

// contain runs f, logging a panic instead of propagating it.
func contain(logger *slog.Logger, msg string, m Monitor, f func()) {
	defer func() {
		if r := recover(); r != nil {
			logger.Error(msg, "monitor", fmt.Sprintf("%T", m), "panic", r)
		}
	}()
	f()
}

// monitorStatus calls m.Status, turning a panic into an error.
func monitorStatus(ctx context.Context, m Monitor) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return m.Status(ctx)
}

// runMonitor runs m.Run, logging its error or panic.
func runMonitor(ctx context.Context, m Monitor, logger *slog.Logger) {
	defer func() {
		if r := recover(); r != nil {
			logger.Error("monitor panicked", "monitor", fmt.Sprintf("%T", m), "panic", r)
		}
	}()
	if err := m.Run(ctx); err != nil && ctx.Err() == nil {
		logger.Error("monitor failed", "monitor", fmt.Sprintf("%T", m), "error", err)
	}
}
