package rpc

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
)

var errAlreadyDone = errors.New("rpc: call already finished")

// Call is one incoming call being served by a [Handler].
type Call struct {
	conn *Conn
	msg  *Message
	id   []byte

	mu     sync.Mutex
	done   bool
	failed bool // the final reply was a failure
	handed bool // the final reply went to the connection's writer
	ticket *ticket
}

// ticket is a call's place among those its connection serves at once,
// given back once the call is answered. It is apart from the Call so that
// a final reply waiting for a slow peer keeps only it, not the call.
type ticket struct {
	conn *Conn
	once sync.Once
}

// answered marks the call answered: its slot is given back.
func (t *ticket) answered() {
	t.once.Do(func() {
		t.conn.running.Add(-1)
		t.conn.signalExit()
	})
}

// handedFinal reports whether the final reply went to the writer, which
// then marks the call answered once it is written.
func (c *Call) handedFinal() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handed
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

// Failed reports whether the call's final reply was sent as a failure
// (false before it is sent).
func (c *Call) Failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done && c.failed
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
	defer c.mu.Unlock() // held while sending: replies keep their order
	if c.done {
		return errAlreadyDone
	}
	c.failed = final && failed
	buf := header(make([]byte, 0, 128), c.id, final, failed)
	buf, err := appendBody(buf, fields)
	if err != nil {
		return fmt.Errorf("reply to %s: %w", c.Operation(), err)
	}
	return c.put(final, frame{buf: buf, cost: len(buf)})
}

// put hands a reply to the connection's writer; a final one marks the call
// answered once it is written. c.mu is held.
func (c *Call) put(final bool, f frame) error {
	if final {
		c.done, c.handed = true, true
		f.ticket = c.ticket
	}
	return c.conn.put(f)
}

// FinishShared sends the final reply with one field, key, whose raw JSON
// value is sent as it is, without a copy: the value may wait in the
// connection's queue for a slow peer, so it must never change afterwards.
// It suits a large value that many replies share, such as a cached list.
func (c *Call) FinishShared(key string, value []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return errAlreadyDone
	}
	// One allocation for the pieces and the head: many such replies may
	// wait for slow peers.
	r := new(sharedReply)
	head := header(r.head[:0], c.id, true, false)
	head = strconv.AppendQuote(append(head, ','), key) // a Go-quoted ASCII key is valid JSON
	head = append(head, ':')
	r.pieces = [2][]byte{value, closing}
	return c.put(true, frame{buf: head, shared: r.pieces[:], cost: len(head)})
}

// sharedReply holds the pieces of a FinishShared reply.
type sharedReply struct {
	pieces [2][]byte
	head   [48]byte
}

// closing ends a message.
var closing = []byte("}\n")

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
// this call: its fields as they came, its id replaced by this call's. It is
// final, and ends this call, when m is. A large m is not copied: the
// reply is written from m's own bytes (a Message never changes).
func (c *Call) Relay(m *Message) error {
	if len(m.line) < relayCopyBelow {
		return c.send(m.Finished(), m.Failed(), m)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return errAlreadyDone
	}
	final := m.Finished()
	head := header(make([]byte, 0, 48), c.id, final, m.Failed())
	pieces := make([][]byte, 0, 4*len(m.fields)+1)
	for _, f := range m.fields {
		switch string(f.key) {
		case "id", "finished", "failed":
			continue
		}
		pieces = append(pieces, comma, f.quoted, colon, f.value)
	}
	pieces = append(pieces, closing)
	return c.put(final, frame{buf: head, shared: pieces, cost: len(head) + len(m.line)})
}

// relayCopyBelow is the size under which a relayed reply is copied into
// one buffer rather than written from its pieces.
const relayCopyBelow = 4 << 10

var (
	comma = []byte(",")
	colon = []byte(":")
)
