package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigild/vigil/rpc"
)

// Client is an operator's connection to a supervisor. Its methods are safe
// for concurrent use. Close it when done.
type Client struct {
	conn *rpc.Conn
	done chan struct{}
}

// ClientOptions configures [DialOptions].
type ClientOptions struct {
	// Handlers serves calls the supervisor makes on this connection (a
	// worker's or the controller's operations); nil for an operator.
	Handlers rpc.Handlers
	// Logger receives the connection's bad input; nil discards it.
	Logger *slog.Logger
}

// Dial connects to the supervisor socket at path. An error wraps
// [ErrNoSupervisor] when nothing listens there, and [ErrRefused] when the
// socket's permissions refuse the caller.
func Dial(ctx context.Context, path string) (*Client, error) {
	return DialOptions(ctx, path, ClientOptions{})
}

// DialOptions is [Dial] with options.
func DialOptions(ctx context.Context, path string, opts ClientOptions) (*Client, error) {
	if path == "" {
		path = DefaultSocket
	}
	nc, err := dialSocket(ctx, path)
	if err != nil {
		return nil, err
	}
	c := &Client{
		conn: rpc.NewConn(nc, rpc.Options{Handlers: opts.Handlers, Logger: opts.Logger}),
		done: make(chan struct{}),
	}
	go func() {
		defer close(c.done)
		_ = c.conn.Run(context.Background())
	}()
	return c, nil
}

// Close closes the connection and waits for its reader to stop.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// Conn returns the underlying protocol connection, for calls this type has
// no method for.
func (c *Client) Conn() *rpc.Conn { return c.conn }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// ConnectionInfo is one registration as status lists it.
type ConnectionInfo struct {
	// ConnectionID is the id the supervisor gave the connection (a UUID).
	ConnectionID string `json:"connection_id"`
	// ProcessID is the registered process_id (0 when absent or not a
	// number).
	ProcessID int `json:"process_id"`
	// State is the registered state, raw; see [ConnectionInfo.StateMap].
	State json.RawMessage `json:"state"`
}

// connectionInfos reads the connections of a status reply. It walks the
// already validated reply instead of decoding it again: a status with
// thousands of connections stays cheap.
func connectionInfos(reply *rpc.Message) ([]ConnectionInfo, error) {
	elems, ok := reply.GetArray("connections")
	if !ok {
		return nil, fmt.Errorf("status reply has no 'connections' array")
	}
	list := make([]ConnectionInfo, len(elems))
	for i, e := range elems {
		// Walked, not indexed (rpc.Object allocates an index per entry:
		// 5 MB for 10,000 connections); a key given twice, the last wins,
		// as with Get. (GetArray's elements start with their value.)
		if len(e) == 0 || e[0] != '{' {
			return nil, fmt.Errorf("status reply: connection entry %.40s is not an object", e)
		}
		c := &list[i]
		for k, v := range rpc.Fields(e) {
			switch string(k) {
			case "connection_id":
				c.ConnectionID, _ = rpc.String(v)
			case "process_id":
				pid, _ := rpc.Int(v)
				c.ProcessID = int(pid)
			case "state":
				c.State = v
			}
		}
	}
	return list, nil
}

// StateMap decodes the registered state.
func (c ConnectionInfo) StateMap() (map[string]any, error) {
	var m map[string]any
	err := json.Unmarshal(c.State, &m)
	return m, err
}

// Status is the answer to a status call.
type Status struct {
	// Parts are the intermediate replies, raw and in order: one per monitor
	// ({"memory_monitor": …}, {"process_monitor": …}, or {"monitor", "error"}
	// for a monitor that failed) and the controller's {"children": …}.
	Parts []*rpc.Message
	// Connections are the registrations, in the order they came.
	Connections []ConnectionInfo
	// Final is the final reply, raw.
	Final *rpc.Message
}

// Part returns the raw value of key in the first intermediate reply that
// has it, or nil.
func (s *Status) Part(key string) json.RawMessage {
	for _, p := range s.Parts {
		if v, ok := p.Get(key); ok {
			return v
		}
	}
	return nil
}

// Register registers this connection with the given state, as a worker
// does, and returns the connection id the supervisor assigned.
func (c *Client) Register(ctx context.Context, state map[string]any) (string, error) {
	reply, err := c.conn.Call(ctx, "register", map[string]any{"state": state}, nil)
	if err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	id, _ := reply.GetString("connection_id")
	return id, nil
}

// Status asks for the status of the supervisor, its monitors and workers.
// When ctx has a deadline, the supervisor is told, and answers within it
// with what it has, naming a monitor or a controller that did not answer.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	st := &Status{}
	reply, err := c.conn.Call(ctx, "status", StatusParams(ctx), func(m *rpc.Message) error {
		st.Parts = append(st.Parts, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	st.Final = reply
	if st.Connections, err = connectionInfos(reply); err != nil {
		return nil, err
	}
	return st, nil
}

// StatusParams are the parameters of a status call made under ctx: its
// deadline as a "timeout" in seconds, or none.
func StatusParams(ctx context.Context) any {
	dl, ok := ctx.Deadline()
	if !ok {
		return nil
	}
	return map[string]float64{"timeout": max(time.Until(dl).Seconds(), 0.001)}
}

// Restart asks the supervisor to signal the controller: "INT" (or "") stops
// it gracefully, "HUP" restarts it blue/green.
func (c *Client) Restart(ctx context.Context, signal string) error {
	var params any
	if signal != "" {
		params = map[string]string{"signal": signal}
	}
	if _, err := c.conn.Call(ctx, "restart", params, nil); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// Forward calls operation (an object with its own "do", such as
// map[string]any{"do": "thread_dump"}) on the worker with that connection id
// and returns the worker's final reply; onReply, if not nil, receives each
// intermediate reply as it streams. A failed reply comes with a
// *rpc.RemoteError.
func (c *Client) Forward(ctx context.Context, connectionID string, operation any, onReply func(*rpc.Message) error) (*rpc.Message, error) {
	params := struct {
		ConnectionID string  `json:"connection_id"`
		Operation    any     `json:"operation"`
		Timeout      float64 `json:"timeout,omitempty"`
	}{ConnectionID: connectionID, Operation: operation}
	if dl, ok := ctx.Deadline(); ok {
		// Let the supervisor give up too, and say so, rather than leave the
		// worker's call pending after we stop waiting.
		params.Timeout = max(time.Until(dl).Seconds(), 0.001)
	}
	return c.conn.Call(ctx, "forward", params, onReply)
}
