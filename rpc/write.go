package rpc

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// maxQueued bounds the bytes a connection holds queued for a peer that
// reads slowly or not at all: a reply that would take the queue past it
// waits (and with it its handler) until the queue is taken for writing. A
// single message larger than this is queued alone.
const maxQueued = 1 << 20

// frame is one message to write: its bytes, or its head followed by pieces
// shared with other frames (which must not change); the bytes it holds
// that are its own; and, for a final reply, its call's ticket.
type frame struct {
	buf    []byte
	shared [][]byte
	cost   int
	ticket *ticket // the call is answered once the frame is written
}

func (f frame) finish() {
	if f.ticket != nil {
		f.ticket.answered()
	}
}

// outbox is a connection's write side. One goroutine at a time writes:
// the one that found nobody writing. It writes its own message, then
// everything the others queued meanwhile, so that a peer that does not
// read holds one goroutine of the connection, not one per reply.
type outbox struct {
	mu      sync.Mutex
	room    sync.Cond // signalled when the queue is taken, or the connection ends
	queue   []frame
	cost    int
	writing bool
}

// put sends f: written at once when nobody is writing, queued otherwise.
// The error is the write's when this goroutine wrote f, ErrClosed when the
// connection has ended, and nil when f was queued (a later failure closes
// the connection). f is finished exactly once, when it is written or
// dropped.
func (c *Conn) put(f frame) error {
	o := &c.out
	o.mu.Lock()
	for o.writing && o.cost > 0 && o.cost+f.cost > maxQueued && !c.ended() {
		o.room.Wait()
	}
	if c.ended() {
		o.mu.Unlock()
		f.finish()
		return ErrClosed
	}
	if o.writing {
		o.queue = append(o.queue, f)
		o.cost += f.cost
		o.mu.Unlock()
		return nil
	}
	o.writing = true
	o.mu.Unlock()

	err := c.writeFrames([]frame{f})
	for {
		o.mu.Lock()
		batch := o.queue
		o.queue, o.cost = nil, 0
		if len(batch) == 0 {
			o.writing = false
		}
		o.room.Broadcast()
		o.mu.Unlock()
		if len(batch) == 0 {
			c.signalExit()
			return err
		}
		_ = c.writeFrames(batch) // a failure closes the connection
	}
}

// writeFrames writes frames in one go (writev where the transport has it),
// then finishes them. A failed write closes the connection, and the
// frames are dropped.
func (c *Conn) writeFrames(frames []frame) error {
	var err error
	if c.ended() {
		err = ErrClosed
	} else {
		if d, ok := c.rwc.(deadliner); ok && c.opts.WriteTimeout > 0 {
			_ = d.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
		}
		if len(frames) == 1 && frames[0].shared == nil {
			_, err = c.rwc.Write(frames[0].buf)
		} else {
			all := make(net.Buffers, 0, 3*len(frames))
			for _, f := range frames {
				all = append(append(all, f.buf), f.shared...)
			}
			_, err = all.WriteTo(c.rwc)
		}
		if d, ok := c.rwc.(deadliner); ok && c.opts.WriteTimeout > 0 {
			// An armed deadline wakes the process when it expires, write or not.
			_ = d.SetWriteDeadline(time.Time{})
		}
		if err != nil {
			c.shutdown()
			err = fmt.Errorf("%w: write: %w", ErrClosed, err)
		} else {
			c.lastIO.Store(time.Now().UnixNano())
		}
	}
	for _, f := range frames {
		f.finish()
	}
	return err
}

// writing reports whether a goroutine is writing (or has queued writes).
func (c *Conn) writing() bool {
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	return c.out.writing
}

// wakeWriters releases the goroutines waiting for room in the queue: the
// connection has ended.
func (c *Conn) wakeWriters() {
	c.out.mu.Lock()
	c.out.room.Broadcast()
	c.out.mu.Unlock()
}

// write sends one encoded message that the connection may keep.
func (c *Conn) write(b []byte) error {
	return c.put(frame{buf: b, cost: len(b)})
}
