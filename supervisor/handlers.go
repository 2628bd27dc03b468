package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/vigild/vigil/rpc"
)

// doRegister merges the call's state into the connection's, assigns a new
// connection id and tells the monitors. A second register on the same
// connection replaces the first registration. A state over the limits, a
// "controller" role from any process but the controller, and a process_id
// the peer may not name are refused.
func (s *Server) doRegister(ctx context.Context, call *rpc.Call) error {
	if raw, ok := call.Message().Get("state"); ok {
		if len(raw) > s.limits.MaxStateSize {
			return rpc.Errorf("LimitError", "register: the state is %d bytes, over the limit of %d bytes (supervisor.max_state_size)",
				len(raw), s.limits.MaxStateSize)
		}
		if d := jsonDepth(raw); d > s.limits.MaxStateDepth {
			return rpc.Errorf("LimitError", "register: the state is nested %d deep, over the limit of %d (supervisor.max_state_depth)",
				d, s.limits.MaxStateDepth)
		}
	}
	var params struct {
		State map[string]any `json:"state"`
	}
	if err := call.Message().DecodeField("state", &params.State); err != nil {
		return rpc.ArgumentError("register: 'state' must be an object: %v", err)
	}
	conn := call.Conn()
	peer := peerOf(ctx)
	if role, _ := params.State["role"].(string); role == "controller" {
		if err := s.mayControl(peer); err != nil {
			return err
		}
	}
	id := uuid.NewString()

	s.mu.Lock()
	old := s.byConn[conn]
	state := make(map[string]any, len(params.State)+2)
	if old != nil {
		for k, v := range old.State() {
			state[k] = v
		}
	}
	for k, v := range params.State {
		state[k] = v
	}
	verified, err := verifyProcess(peer, intValue(state["process_id"]))
	if err != nil {
		s.mu.Unlock()
		return err
	}
	state["connection_id"] = id
	state["verified"] = verified
	entry, err := encodeEntry(id, state)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if size := len(entry) - len(id) - 64; size > s.limits.MaxStateSize {
		s.mu.Unlock()
		return rpc.Errorf("LimitError", "register: the state merged with this connection's earlier registrations is %d bytes, over the limit of %d bytes (supervisor.max_state_size)",
			size, s.limits.MaxStateSize)
	}
	var brief json.RawMessage
	if len(entry) > briefAbove {
		if brief, err = encodeEntry(id, briefState(state, len(entry))); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	s.seq++
	c := newConnection(id, state)
	c.peer, c.verified, c.conn, c.seq, c.entry, c.brief = peer, verified, conn, s.seq, entry, brief
	if old != nil {
		s.forget(old)
		s.events.push(monitorEvent{conn: old})
	}
	s.add(c)
	s.events.push(monitorEvent{conn: c, register: true})
	s.mu.Unlock()

	s.logger.Info("registered", "connection_id", id, "process_id", c.ProcessID(), "name", logName(c.Service()),
		"peer_pid", peer.PID, "verified", verified)
	return call.Finish(map[string]string{"connection_id": id})
}

// errNotDescendant refuses a registration of another process.
func errNotDescendant(pid int, peer Credentials) error {
	return rpc.Errorf("PermissionError", "register: process_id %d is neither the registering process (pid %d) nor one of its descendants; only root may register another process",
		pid, peer.PID)
}

// mayControl checks that a peer is the controller: a peer whose pid the
// kernel cannot give (outside the supervisor's pid namespace) never is.
func (s *Server) mayControl(peer Credentials) error {
	want := s.controllerPID()
	switch {
	case peer.PID <= 0:
		return rpc.Errorf("PermissionError", "register: only the controller (pid %d) may register with the role \"controller\"; "+
			"this peer's pid is unknown (it is outside the supervisor's pid namespace)", want)
	case peer.PID != want:
		return rpc.Errorf("PermissionError", "register: only the controller (pid %d) may register with the role \"controller\", not pid %d", want, peer.PID)
	}
	return nil
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
	op, ok := rpc.Object(raw) // part of a line already validated
	if !ok {
		return call.Fail(map[string]any{"error": "'operation' must be an object with a 'do'", "connection_id": id})
	}
	name, isCall := op.Operation()
	if !isCall || name == "" {
		return call.Fail(map[string]any{"error": "Missing 'do' in 'operation'", "connection_id": id})
	}
	if err := s.authorize(ctx, call, forwardRole(target, name), slog.String("connection_id", id),
		slog.Int("target_pid", target.ProcessID()), slog.String("forwarded", logName(name))); err != nil {
		return err
	}
	timeout, ok := seconds(m, "timeout")
	if !ok {
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

	began := time.Now()
	reply, err := target.Call(ctx, name, op, call.Relay)
	s.stats.forwarded(forwardTarget(target), time.Since(began))
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

// forwardRole is the role a forward needs: to the controller, reading its
// children or logs is read and anything else control; to a worker, it is
// diagnostics.
func forwardRole(target *Connection, op string) Role {
	if target.Role() == "controller" {
		switch op {
		case "children", "logs":
			return RoleRead
		}
		return RoleControl
	}
	return RoleDiagnostics
}

// forwardTarget is the kind of a forward's target, as Stats.Forward
// counts it: "controller" or "worker".
func forwardTarget(target *Connection) string {
	if target.Role() == "controller" {
		return "controller"
	}
	return "worker"
}

// doRestart finishes its reply, then signals the controller: INT (the
// default) stops it gracefully, HUP restarts it.
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
	pid := s.controllerPID()
	if err := s.authorize(ctx, call, RoleControl, slog.String("signal", SignalName(sig)), slog.Int("controller_pid", pid)); err != nil {
		return err
	}
	if s.ParentPID <= 0 && pid <= 1 {
		return rpc.Errorf("RuntimeError", "restart: no parent process to signal (parent pid %d)", pid)
	}
	if err := call.Finish(nil); err != nil {
		return err
	}
	s.logger.Info("restart: signalling the controller", "signal", SignalName(sig), "pid", pid)
	if err := syscall.Kill(pid, sig); err != nil {
		s.logger.Error("restart: signal failed", "signal", SignalName(sig), "pid", pid, "error", err)
	}
	return nil
}

// controllerPID is the controller's pid: ParentPID, else the parent's.
func (s *Server) controllerPID() int {
	if s.ParentPID > 0 {
		return s.ParentPID
	}
	return os.Getppid()
}

// seconds reads a field of seconds: 0 when it is absent or null, false
// when it is not a number at least 0.
func seconds(m *rpc.Message, key string) (float64, bool) {
	raw, ok := m.Get(key)
	if !ok || string(raw) == "null" {
		return 0, true
	}
	if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, false // a string, an object...: not a number
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil && f >= 0
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
// monitor that fails or does not answer in time), one with the
// controller's children when the controller is registered (or one naming
// it when it does not answer), and then the connections. With a "timeout"
// (the caller's, in seconds), every part comes within three quarters of
// it, so that the caller learns which party was slow rather than hearing
// nothing.
func (s *Server) doStatus(ctx context.Context, call *rpc.Call) error {
	if err := s.authorize(ctx, call, RoleRead); err != nil {
		return err
	}
	timeout, ok := seconds(call.Message(), "timeout")
	if !ok {
		return rpc.ArgumentError("status: 'timeout' must be a positive number of seconds")
	}
	var by time.Time
	if timeout > 0 {
		by = time.Now().Add(time.Duration(timeout * 0.75 * float64(time.Second)))
	}
	part := func() (context.Context, context.CancelFunc, time.Duration) {
		d := s.StatusTimeout
		if !by.IsZero() {
			d = max(min(d, time.Until(by)), time.Millisecond)
		}
		pctx, cancel := context.WithTimeout(ctx, d)
		return pctx, cancel, d
	}
	for _, m := range s.Monitors {
		mctx, cancel, d := part()
		v, err := monitorStatus(mctx, m)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("the %s did not answer within %v", monitorName(m), d.Round(time.Millisecond))
			}
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
	for _, c := range s.controllerList() {
		cctx, cancel, d := part()
		err := s.relayChildren(cctx, d, call, c)
		cancel()
		if err != nil {
			return err
		}
	}
	return call.FinishShared("connections", s.statusEntries())
}

// relayChildren asks the controller for its children and relays the answer
// as an intermediate reply; when the controller fails or does not answer
// within d, the reply says so, naming it.
func (s *Server) relayChildren(ctx context.Context, d time.Duration, call *rpc.Call, controller *Connection) error {
	reply, err := controller.Call(ctx, "children", nil, nil)
	if err != nil {
		msg := err.Error()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			msg = fmt.Sprintf("the controller (pid %d) did not answer within %v", controller.ProcessID(), d.Round(time.Millisecond))
		case errors.Is(err, rpc.ErrClosed):
			msg = fmt.Sprintf("the controller (pid %d) went away before answering", controller.ProcessID())
		}
		s.logger.Warn("status: no children from the controller", "pid", controller.ProcessID(), "error", msg)
		return call.Reply(map[string]any{
			"controller": controller.id,
			"process_id": controller.ProcessID(),
			"error":      rpc.Error{Class: "ControllerError", Message: msg},
		})
	}
	return call.Reply(reply) // its fields, without its id and flags
}
