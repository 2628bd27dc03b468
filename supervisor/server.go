package supervisor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/vigild/vigil/rpc"
)

// DefaultStatusTimeout bounds each monitor's Status and the controller's
// children reply within one status call.
const DefaultStatusTimeout = 5 * time.Second

// Server is the supervisor server. Set its fields, then call [Server.Serve]
// once. The zero value serves with no monitors and no logging.
type Server struct {
	// Monitors watch the registered workers.
	Monitors []Monitor
	// Logger receives the server's events; nil discards them.
	Logger *slog.Logger
	// ParentPID is the controller: the process that restart signals, and
	// the only one that may register with the role "controller"; 0 means
	// the server's parent process, as in the original.
	ParentPID int
	// MaxLineSize is the longest line accepted on a connection (default
	// rpc.DefaultMaxLineSize).
	MaxLineSize int
	// StatusTimeout bounds each monitor's part of a status call (default
	// DefaultStatusTimeout).
	StatusTimeout time.Duration

	once     sync.Once
	logger   *slog.Logger
	handlers rpc.Handlers
	events   *eventQueue

	mu     sync.Mutex
	byID   map[string]*Connection
	byConn map[*rpc.Conn]*Connection
	seq    uint64
}

func (s *Server) init() {
	s.once.Do(func() {
		s.logger = s.Logger
		if s.logger == nil {
			s.logger = slog.New(slog.DiscardHandler)
		}
		if s.StatusTimeout <= 0 {
			s.StatusTimeout = DefaultStatusTimeout
		}
		s.byID = make(map[string]*Connection)
		s.byConn = make(map[*rpc.Conn]*Connection)
		s.events = newEventQueue()
		s.handlers = rpc.Handlers{
			"register": s.doRegister,
			"forward":  s.doForward,
			"restart":  s.doRestart,
			"status":   s.doStatus,
		}
	})
}

// Serve runs the monitors and serves connections accepted from l until ctx
// ends. Then it closes l (before it returns) and every connection, and returns once every
// handler, monitor and goroutine it started has returned. It returns nil
// after ctx ends, or the listener's error if accepting fails otherwise.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.init()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Monitors and the event queue outlive the connections, so that every
	// removal reaches the monitors before they stop.
	mctx, stopMonitors := context.WithCancel(context.Background())
	var monitors sync.WaitGroup
	monitors.Go(func() { s.events.run(mctx, s.Monitors, s.logger) })
	for _, m := range s.Monitors {
		monitors.Go(func() { runMonitor(mctx, m, s.logger) })
	}
	var conns sync.WaitGroup
	defer func() {
		cancel()
		conns.Wait()
		stopMonitors()
		monitors.Wait()
	}()

	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer func() {
		stop()
		l.Close() // once closed, the listener is closed when Serve returns
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				s.logger.Error("accept failed: out of file descriptors", "error", err)
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		conns.Go(func() { s.serveConn(ctx, c) })
	}
}

// serveConn serves one accepted connection until it ends, then forgets it.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	var peer Credentials
	if pc, ok := c.(interface{ Credentials() Credentials }); ok {
		peer = pc.Credentials()
	}
	conn := rpc.NewConn(c, rpc.Options{
		Accepted:    true,
		Handlers:    s.handlers,
		MaxLineSize: s.MaxLineSize,
		Logger:      s.logger.With("peer_pid", peer.PID),
	})
	conn.MergeState(map[string]any{"peer": peer})
	_ = conn.Run(ctx) // Run logs its own errors
	s.remove(conn)
}

// remove forgets the registration of a connection that has ended.
func (s *Server) remove(conn *rpc.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.byConn[conn]; old != nil {
		delete(s.byConn, conn)
		delete(s.byID, old.id)
		s.events.push(monitorEvent{conn: old})
		s.logger.Debug("connection removed", "connection_id", old.id, "process_id", old.ProcessID())
	}
}

// Connections returns the current registrations, in the order they came.
func (s *Server) Connections() []*Connection {
	s.init()
	s.mu.Lock()
	list := make([]*Connection, 0, len(s.byID))
	for _, c := range s.byID {
		list = append(list, c)
	}
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b *Connection) int { return cmp.Compare(a.seq, b.seq) })
	return list
}

// Lookup returns the registration with that connection id, or nil.
func (s *Server) Lookup(id string) *Connection {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// doRegister merges the call's state into the connection's, assigns a new
// connection id and tells the monitors. A second register on the same
// connection replaces the first registration.
func (s *Server) doRegister(ctx context.Context, call *rpc.Call) error {
	var params struct {
		State map[string]any `json:"state"`
	}
	if err := call.Message().DecodeField("state", &params.State); err != nil {
		return rpc.ArgumentError("register: 'state' must be an object: %v", err)
	}
	conn := call.Conn()
	peer, _ := conn.State()["peer"].(Credentials)
	if role, _ := params.State["role"].(string); role == "controller" && peer.PID != 0 && peer.PID != s.parentPID() {
		return rpc.Errorf("PermissionError", "register: only the controller (pid %d) may register with the role \"controller\", not pid %d", s.parentPID(), peer.PID)
	}
	id := uuid.NewString()

	s.mu.Lock()
	old := s.byConn[conn]
	state := make(map[string]any, len(params.State)+1)
	if old != nil {
		for k, v := range old.state {
			state[k] = v
		}
	}
	for k, v := range params.State {
		state[k] = v
	}
	state["connection_id"] = id
	entry, err := encodeEntry(id, state)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.seq++
	c := &Connection{id: id, state: state, peer: peer, conn: conn, seq: s.seq, entry: entry}
	if old != nil {
		delete(s.byID, old.id)
		s.events.push(monitorEvent{conn: old})
	}
	s.byID[id] = c
	s.byConn[conn] = c
	s.events.push(monitorEvent{conn: c, register: true})
	s.mu.Unlock()

	s.logger.Info("registered", "connection_id", id, "process_id", c.ProcessID(), "name", c.Service(), "peer_pid", peer.PID)
	return call.Finish(map[string]string{"connection_id": id})
}

// doForward proxies an operation to a registered worker and relays every
// reply back, ending on the worker's final reply.
func (s *Server) doForward(ctx context.Context, call *rpc.Call) error {
	m := call.Message()
	id, ok := m.GetString("connection_id")
	if !ok {
		return call.Fail(map[string]any{"error": "Missing 'connection_id' parameter"})
	}
	target := s.Lookup(id)
	if target == nil {
		return call.Fail(map[string]any{"error": "Connection not found", "connection_id": id})
	}
	raw, ok := m.Get("operation")
	if !ok || string(raw) == "null" {
		return call.Fail(map[string]any{"error": "Missing 'operation' parameter", "connection_id": id})
	}
	op, err := rpc.Parse(raw)
	if err != nil {
		return call.Fail(map[string]any{"error": "'operation' must be an object with a 'do'", "connection_id": id})
	}
	name, isCall := op.Operation()
	if !isCall || name == "" {
		return call.Fail(map[string]any{"error": "Missing 'do' in 'operation'", "connection_id": id})
	}
	var timeout float64
	if err := m.DecodeField("timeout", &timeout); err != nil || timeout < 0 {
		return call.Fail(map[string]any{"error": "'timeout' must be a positive number of seconds", "connection_id": id})
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		d := maxForwardTimeout
		if timeout < d.Seconds() {
			d = time.Duration(timeout * float64(time.Second))
		}
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}

	reply, err := target.Call(ctx, name, op, call.Relay)
	switch {
	case reply != nil: // finished or failed: the worker's own final reply
		return call.Relay(reply)
	case errors.Is(err, rpc.ErrClosed):
		return call.Fail(map[string]any{"error": "Connection closed before the worker replied", "connection_id": id})
	case errors.Is(err, context.DeadlineExceeded):
		return call.Fail(map[string]any{"error": fmt.Sprintf("Forwarded %s timed out after %gs", name, timeout), "connection_id": id})
	case ctx.Err() != nil:
		return nil // the caller's connection ended
	default:
		return call.Fail(map[string]any{"error": err.Error(), "connection_id": id})
	}
}

// doRestart finishes its reply, then signals the parent process (the
// controller): INT (the default) stops it gracefully, HUP restarts it.
func (s *Server) doRestart(ctx context.Context, call *rpc.Call) error {
	name := "INT"
	if raw, ok := call.Message().Get("signal"); ok && string(raw) != "null" {
		var ok bool
		if name, ok = call.Message().GetString("signal"); !ok {
			return rpc.ArgumentError("restart: 'signal' must be a signal name, not %s", raw)
		}
	}
	sig, err := ParseSignal(name)
	if err != nil {
		return rpc.ArgumentError("restart: %v", err)
	}
	pid := s.parentPID()
	if pid <= 1 {
		return rpc.Errorf("RuntimeError", "restart: no parent process to signal (parent pid %d)", pid)
	}
	if err := call.Finish(nil); err != nil {
		return err
	}
	s.logger.Info("restart: signalling parent", "signal", SignalName(sig), "pid", pid)
	if err := syscall.Kill(pid, sig); err != nil {
		s.logger.Error("restart: signal failed", "signal", SignalName(sig), "pid", pid, "error", err)
	}
	return nil
}

// parentPID is the controller's pid.
func (s *Server) parentPID() int {
	if s.ParentPID != 0 {
		return s.ParentPID
	}
	return os.Getppid()
}

// maxForwardTimeout bounds a forward's "timeout" parameter.
const maxForwardTimeout = 24 * time.Hour

// monitorName is how a monitor is named in a failed status reply: its
// Name() when it has one (the key of its status, such as
// "memory_monitor"), else its Go type.
func monitorName(m Monitor) string {
	if n, ok := m.(interface{ Name() string }); ok {
		return n.Name()
	}
	return fmt.Sprintf("%T", m)
}

// doStatus sends one intermediate reply per monitor (an error reply for a
// monitor that fails), one with the controller's children when the
// controller is registered, and then the connections.
func (s *Server) doStatus(ctx context.Context, call *rpc.Call) error {
	for _, m := range s.Monitors {
		mctx, cancel := context.WithTimeout(ctx, s.StatusTimeout)
		v, err := monitorStatus(mctx, m)
		cancel()
		if err != nil {
			s.logger.Error("monitor status failed", "monitor", monitorName(m), "error", err)
			err = call.Reply(map[string]any{
				"monitor": monitorName(m),
				"error":   rpc.Error{Class: "MonitorError", Message: err.Error()},
			})
		} else {
			err = call.Reply(v)
		}
		if err != nil {
			return err
		}
	}
	conns := s.Connections()
	for _, c := range conns {
		if c.Role() == "controller" {
			if err := s.relayChildren(ctx, call, c); err != nil {
				return err
			}
		}
	}
	size := 16
	for _, c := range conns {
		size += len(c.entry) + 1
	}
	buf := make([]byte, 0, size)
	buf = append(buf, `{"connections":[`...)
	for i, c := range conns {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, c.entry...)
	}
	buf = append(buf, "]}"...)
	return call.Finish(json.RawMessage(buf))
}

// relayChildren asks the controller for its children and relays the answer
// as an intermediate reply.
func (s *Server) relayChildren(ctx context.Context, call *rpc.Call, controller *Connection) error {
	cctx, cancel := context.WithTimeout(ctx, s.StatusTimeout)
	defer cancel()
	reply, err := controller.Call(cctx, "children", nil, nil)
	if err != nil {
		return call.Reply(map[string]any{
			"controller": controller.id,
			"error":      rpc.Error{Class: "ControllerError", Message: err.Error()},
		})
	}
	return call.Reply(reply) // its fields, without its id and flags
}
