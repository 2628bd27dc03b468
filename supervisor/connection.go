package supervisor

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/vigild/vigil/rpc"
)

// Connection is one registration of a worker (or of the controller, or of
// any peer that registered): its connection id and the state it registered
// with. A Connection is an immutable snapshot: a second register on the same
// socket connection replaces it with a new Connection.
type Connection struct {
	id       string
	pid      int    // the state's process_id; 0: absent or not a positive integer
	instance int    // the state's instance; -1: absent
	name     string // the state's name
	role     string // the state's role
	peer     Credentials
	verified bool
	conn     *rpc.Conn
	seq      uint64
	entry    json.RawMessage // {"connection_id","process_id","state"}, encoded once
	brief    json.RawMessage // the entry with the state cut short; nil for a small entry
}

// newConnection is a registration of state: what the server reads of it
// is kept apart, and the whole only encoded, as status sends it (an idle
// registration then costs its entry's bytes, not a decoded map).
func newConnection(id string, state map[string]any) *Connection {
	c := &Connection{id: id, pid: intValue(state["process_id"]), instance: -1}
	if _, ok := state["instance"]; ok {
		c.instance = intValue(state["instance"])
	}
	c.name, _ = state["name"].(string)
	c.role, _ = state["role"].(string)
	return c
}

// ID returns the connection id the server assigned (a UUID).
func (c *Connection) ID() string { return c.id }

// State returns a copy of the registered state, connection_id included,
// decoded anew from the registration's entry (numbers as float64).
func (c *Connection) State() map[string]any {
	var e struct {
		State map[string]any `json:"state"`
	}
	if err := json.Unmarshal(c.entry, &e); err != nil || e.State == nil {
		return map[string]any{"connection_id": c.id}
	}
	return e.State
}

// ProcessID returns the "process_id" of the registered state, or 0 when it
// is absent or not a positive integer.
func (c *Connection) ProcessID() int { return c.pid }

// Service returns the "name" of the registered state: the service the worker
// belongs to, as vigil's controller names it ("" when absent).
func (c *Connection) Service() string { return c.name }

// Instance returns the "instance" of the registered state, or -1.
func (c *Connection) Instance() int { return c.instance }

// Role returns the "role" of the registered state ("controller" for vigil's
// controller, "" for a worker).
func (c *Connection) Role() string { return c.role }

// Verified reports whether the supervisor knows who registered: the
// kernel gave the peer's pid, and the registered process_id (if any) is
// that process, one of its descendants, or any process of a root peer.
// The monitors act only on the processes of verified registrations. The
// registered state says it too, as "verified".
func (c *Connection) Verified() bool { return c.verified }

// Peer returns the credentials of the process at the other end of the
// socket, as the kernel reported them when it connected.
func (c *Connection) Peer() Credentials { return c.peer }

// Call calls an operation on the worker, as [rpc.Conn.Call] does.
func (c *Connection) Call(ctx context.Context, operation string, params any, onReply func(*rpc.Message) error) (*rpc.Message, error) {
	return c.conn.Call(ctx, operation, params, onReply)
}

// Done is closed when the worker's socket connection has ended.
func (c *Connection) Done() <-chan struct{} { return c.conn.Done() }

func intValue(v any) int {
	switch n := v.(type) {
	case float64:
		if n > 0 && n == float64(int(n)) {
			return int(n)
		}
	case json.Number:
		i, err := n.Int64()
		if err == nil && i > 0 {
			return int(i)
		}
	case int:
		return n
	}
	return 0
}

// encodeEntry encodes the connection as the status reply lists it.
func encodeEntry(id string, state map[string]any) (json.RawMessage, error) {
	entry := struct {
		ConnectionID string         `json:"connection_id"`
		ProcessID    any            `json:"process_id"`
		State        map[string]any `json:"state"`
	}{id, state["process_id"], state}
	b, err := json.Marshal(entry)
	if err != nil {
		return nil, fmt.Errorf("encode state of %s: %w", id, err)
	}
	return b, nil
}
