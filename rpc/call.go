package rpc

import (
	"errors"
	"fmt"
	"sync"
)

var errAlreadyDone = errors.New("rpc: call already finished")

// Call is one incoming call being served by a [Handler].
type Call struct {
	conn *Conn
	msg  *Message
	id   []byte

	mu   sync.Mutex
	done bool
}

// Conn returns the connection the call came on.
func (c *Call) Conn() *Conn { return c.conn }

// Message returns the call as received: its operation in "do" and its
// parameters as the other fields.
func (c *Call) Message() *Message { return c.msg }

// Operation returns the call's operation name.
func (c *Call) Operation() string {
	op, _ := c.msg.Operation()
	return op
}

func (c *Call) isDone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

// send encodes and writes one reply. Once a final reply has been sent,
// every further send returns an error.
func (c *Call) send(final, failed bool, fields any) error {
	c.mu.Lock()
	defer c.mu.Unlock() // held while writing: replies keep their order
	if c.done {
		return errAlreadyDone
	}
	buf := header(make([]byte, 0, 128), c.id, final, failed)
	buf, err := appendBody(buf, fields)
	if err != nil {
		return fmt.Errorf("reply to %s: %w", c.Operation(), err)
	}
	if final {
		c.done = true
	}
	return c.conn.write(buf)
}

// Reply sends an intermediate reply with the fields of v (a struct, a map, a
// json.RawMessage holding an object, a *Message, or nil).
func (c *Call) Reply(v any) error { return c.send(false, false, v) }

// Finish sends the final reply with the fields of v.
func (c *Call) Finish(v any) error { return c.send(true, false, v) }

// Fail sends a failed final reply with the fields of v, which should
// include "error". This is the form the original uses for its string
// errors: Fail(map[string]any{"error": "Connection not found", ...}).
func (c *Call) Fail(v any) error { return c.send(true, true, v) }

// FailError sends a failed final reply {"error":{"class","message"}} for
// err (see [Error] for the class).
func (c *Call) FailError(err error) error {
	return c.Fail(struct {
		Error *Error `json:"error"`
	}{wireError(err)})
}

// Relay sends m, a reply received from another connection, as a reply to
// this call: its fields are copied, its id replaced by this call's. It is
// final, and ends this call, when m is.
func (c *Call) Relay(m *Message) error {
	return c.send(m.Finished(), m.Failed(), m)
}
