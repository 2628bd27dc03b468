package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// read is the reader loop; ctx is the handlers' context. It returns nil at
// the end of the peer's input.
func (c *Conn) read(ctx context.Context) error {
	buf := make([]byte, readBufferSize)
	var (
		start, end int    // buf[start:end] is read but not yet routed
		long       []byte // a line longer than buf, gathered so far
		counting   bool   // the partial line's deadline is set
		armed      bool   // a read deadline is set on the transport
		rerr       error  // the last read's error, once buf is routed
	)
	dl, _ := c.rwc.(readDeadliner)
	if c.opts.LineTimeout < 0 {
		dl = nil
	}
	for {
		// Route every complete line read.
		for {
			i := bytes.IndexByte(buf[start:end], '\n')
			if i < 0 {
				break
			}
			chunk := buf[start : start+i]
			start += i + 1
			counting = false
			if len(long)+len(chunk) > c.opts.MaxLineSize {
				return fmt.Errorf("%w: over %d bytes", ErrLineTooLong, c.opts.MaxLineSize)
			}
			var line []byte
			if long != nil {
				line = append(long, chunk...)
				long = nil
			} else {
				line = bytes.Clone(chunk)
			}
			c.route(ctx, line)
			if c.ended() {
				return nil
			}
		}
		if start == end {
			start, end = 0, 0
			if len(buf) > readBufferKeep && long == nil {
				buf = make([]byte, readBufferKeep) // a long line passed: back to less
			}
		}
		partial := end - start + len(long)
		if rerr != nil {
			return c.readError(rerr, partial)
		}
		if end == len(buf) { // full, with part of a line
			switch {
			case start > 0:
				end = copy(buf, buf[start:end])
				start = 0
			case len(long)+len(buf) > c.opts.MaxLineSize:
				return fmt.Errorf("%w: over %d bytes", ErrLineTooLong, c.opts.MaxLineSize)
			case len(buf) < readBufferMax:
				buf = append(buf, make([]byte, len(buf))...)
			default:
				long = append(long, buf...)
				end = 0
			}
		}
		// A line under way must end within the line timeout; between lines,
		// no deadline (an idle connection is no fault, and an armed deadline
		// would wake the process for nothing).
		if dl != nil {
			switch {
			case partial > 0 && !counting:
				counting, armed = true, true
				_ = dl.SetReadDeadline(time.Now().Add(c.opts.LineTimeout))
			case partial == 0 && armed:
				armed = false
				_ = dl.SetReadDeadline(time.Time{})
			}
		}
		c.partial.Store(partial > 0)
		n, err := c.rwc.Read(buf[end:])
		if n > 0 {
			c.lastIO.Store(time.Now().UnixNano())
			c.partial.Store(true) // routed (and cleared) once its line ends
		}
		end += n
		rerr = err
	}
}

// readError is read's result for a failed read with partial bytes of a
// line pending.
func (c *Conn) readError(err error, partial int) error {
	switch {
	case err == io.EOF:
		if partial > 0 {
			c.logger.Warn("partial line at end of connection ignored", "bytes", partial)
		}
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded) && partial > 0:
		return fmt.Errorf("%w: %d bytes of a line not completed within %v", ErrLineTimeout, partial, c.opts.LineTimeout)
	default:
		return err
	}
}

// route handles one line as PROTOCOL.md says: a reply to a pending call, a
// new call, a late reply, or garbage.
func (c *Conn) route(ctx context.Context, line []byte) {
	m, err := Parse(line)
	if err != nil {
		kind := "invalid JSON"
		switch {
		case errors.Is(err, ErrNotObject):
			kind = "not a JSON object"
		case len(bytes.Trim(line, jsonSpace)) == 0:
			kind = "empty line"
		}
		c.logInput(ctx, "ignoring bad message", line, "kind", kind)
		return
	}
	id := m.ID()
	if id == nil {
		c.logInput(ctx, "ignoring message without id", m.line)
		return
	}
	if n, ok := m.IntID(); ok {
		c.mu.Lock()
		p := c.pending[n]
		if p != nil && m.Finished() {
			delete(c.pending, n)
		}
		c.mu.Unlock()
		if p != nil {
			p.push(m)
			return
		}
	}
	if _, ok := m.Operation(); ok {
		c.dispatch(ctx, m)
		return
	}
	c.logger.Debug("ignoring reply to no pending call", "id", truncate(id, 32))
}

// logInput logs bad input by its length and kind only: a peer's lines may
// carry secrets. At debug level the line itself (its start) is added.
func (c *Conn) logInput(ctx context.Context, msg string, line []byte, attrs ...any) {
	attrs = append(attrs, "bytes", len(line))
	if c.logger.Enabled(ctx, slog.LevelDebug) {
		attrs = append(attrs, "content", truncate(line, 200))
	}
	c.logger.Warn(msg, attrs...)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// dispatch runs the handler of an incoming call in its own goroutine. When
// MaxInFlight calls are unanswered (their final replies not yet written),
// it waits for one to be: the reader stops, and the peer is pushed back.
func (c *Conn) dispatch(ctx context.Context, m *Message) {
	if c.slots != nil {
		select {
		case c.slots <- struct{}{}:
		case <-c.done:
			return
		}
	}
	call := &Call{conn: c, msg: m, id: m.ID(), ticket: &ticket{conn: c}}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.answered()
		return
	}
	c.handlers.Add(1)
	c.running.Add(1)
	c.mu.Unlock()
	go c.serve(ctx, call)
}

// answered gives back a call's slot once its final reply is written (or
// dropped).
func (c *Conn) answered() {
	if c.slots != nil {
		<-c.slots
	}
}

// signalExit wakes a drain waiting for the calls to be answered.
func (c *Conn) signalExit() {
	select {
	case c.exited <- struct{}{}:
	default:
	}
}

func (c *Conn) serve(ctx context.Context, call *Call) {
	defer func() {
		if !call.handedFinal() {
			call.ticket.answered()
		}
		c.handlers.Done()
	}()
	op, _ := call.msg.Operation()
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				c.logger.Error("handler panicked", "operation", op, "panic", r)
				err = Errorf("Panic", "%v", r)
			}
		}()
		h := c.opts.Handlers[op]
		if h == nil {
			if op == "" {
				return ArgumentError("operation name (\"do\") must be a non-empty string")
			}
			return Errorf("NoMethodError", "unknown operation %q", op)
		}
		return h(ctx, call)
	}()
	if err != nil {
		if !call.isDone() {
			c.logger.Debug("call failed", "operation", op, "error", err)
		}
		if ferr := call.FailError(err); ferr != nil && !errors.Is(ferr, errAlreadyDone) {
			c.logger.Debug("could not send failure", "operation", op, "error", ferr)
		}
		return
	}
	if ferr := call.Finish(nil); ferr != nil && !errors.Is(ferr, errAlreadyDone) {
		c.logger.Debug("could not finish call", "operation", op, "error", ferr)
	}
}
