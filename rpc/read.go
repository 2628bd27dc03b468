package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
)

// reader is a connection's reading state, kept in the Conn rather than
// on the reading goroutine's stack: an idle connection's goroutine waits
// with a few frames only, so its stack shrinks to the least.
type reader struct {
	buf      []byte // buf[start:end] is read but not yet routed; nil while nothing is
	start    int
	end      int
	scanned  int      // buf[start:scanned] holds no newline
	long     [][]byte // the full chunks of a line longer than a chunk, before buf
	longLen  int      // the bytes in long
	counting bool     // the partial line's deadline is set
	armed    bool     // a read deadline is set on the transport
	err      error    // the last read's error, once buf is routed
	raw      syscall.RawConn
	dl       readDeadliner // nil: the transport has no deadlines
	rr       rawRead
}

// errIdle is readLines's way of saying that everything read is routed and
// the connection waits for more.
var errIdle = errors.New("idle")

// read is the reader loop; ctx is the handlers' context. It reads until
// the connection ends, and then finishes it, unless the connection is
// parked first (see [Parker]): then it returns, and reads on, in another
// goroutine, once input comes.
//
// Its buffer starts small and doubles for a longer line, up to a chunk
// (readChunk); a line that fits takes the buffer with it (no copy), and a
// short one is copied out. A line longer than a chunk is read into chunks
// taken from a pool, and joined into one slice of its exact size once its
// end has come: one copy, no growth, no zeroing, and the chunks serve the
// next long line. Between lines, a socket is waited on with no buffer at
// all (see readRaw), so that an idle connection costs little memory.
func (c *Conn) read(ctx context.Context) {
	parker := c.parker()
	for {
		err := c.readLines(ctx)
		if err != errIdle {
			c.finish(err)
			return
		}
		if parker != nil {
			// Parked if nothing comes for a while.
			_ = c.rd.dl.SetReadDeadline(time.Now().Add(c.parkAfter()))
			c.rd.armed = true
		}
		// Wait for input in as few frames as can be.
		c.rd.end, c.rd.err = readRaw(c.rd.raw, &c.rd)
		if parker != nil && c.rd.end == 0 && errors.Is(c.rd.err, os.ErrDeadlineExceeded) {
			c.rd.err = nil
			c.rd.armed = false
			_ = c.rd.dl.SetReadDeadline(time.Time{})
			if c.parkNow(parker) {
				return
			}
		}
	}
}

// readLines reads and routes lines until the connection ends (its error,
// or nil at the end of the input) or, over a socket, until everything
// read is routed (errIdle).
func (c *Conn) readLines(ctx context.Context) error {
	r := &c.rd
	maxLine := c.opts.MaxLineSize
	dl := r.dl
	parking := c.opts.Parker != nil && r.raw != nil // read re-arms the deadline when idle
	for {
		// Route every complete line read.
		for {
			i := bytes.IndexByte(r.buf[r.scanned:r.end], '\n')
			if i < 0 {
				r.scanned = r.end
				break
			}
			nl := r.scanned + i
			if r.longLen+nl-r.start > maxLine {
				return fmt.Errorf("%w: over %d bytes", ErrLineTooLong, maxLine)
			}
			var line []byte
			if r.long != nil {
				// A line over a chunk: its chunks and its end in buf (from
				// 0: its start is in long[0]) joined.
				line = r.joinLong(r.buf[:nl])
				r.start, r.scanned = nl+1, nl+1
			} else if nl-r.start > readBufferKeep {
				// A long line keeps the buffer; what follows it goes to a
				// new one.
				line = r.buf[r.start:nl:nl]
				rest := r.buf[nl+1 : r.end]
				r.buf = make([]byte, max(readBufferKeep, len(rest)))
				r.end = copy(r.buf, rest)
				r.start, r.scanned = 0, 0
			} else {
				line = bytes.Clone(r.buf[r.start:nl])
				r.start, r.scanned = nl+1, nl+1
			}
			r.counting = false
			c.route(ctx, line)
			if c.ended() {
				return nil
			}
		}
		if r.start == r.end {
			r.start, r.end, r.scanned = 0, 0, 0
			if len(r.buf) > readBufferKeep {
				giveChunk(r.buf) // if it is one
				r.buf = nil      // a long line passed: back to less
			}
		}
		partial := r.longLen + r.end - r.start
		if r.err != nil {
			return c.readError(r.err, partial)
		}
		if r.end == len(r.buf) && r.buf != nil { // full, with part of a line
			switch {
			case r.start > 0: // (never with long chunks: the line starts in long[0])
				r.end = copy(r.buf, r.buf[r.start:r.end])
				r.scanned -= r.start
				r.start = 0
			case r.longLen+len(r.buf) > maxLine:
				return fmt.Errorf("%w: over %d bytes", ErrLineTooLong, maxLine)
			case len(r.buf) >= readChunk:
				// A chunk full of one line: on into the next.
				r.long = append(r.long, r.buf)
				r.longLen += len(r.buf)
				r.buf = takeChunk()
				r.end, r.scanned = 0, 0
			default:
				var grown []byte
				if size := min(2*len(r.buf), maxLine+1, readChunk); size == readChunk {
					grown = takeChunk() // the pool's, not a new one for each long line
				} else {
					grown = make([]byte, size)
				}
				copy(grown, r.buf[:r.end])
				r.buf = grown
			}
		}
		// A line under way must end within the line timeout; between lines,
		// no deadline (an idle connection is no fault, and an armed deadline
		// would wake the process for nothing).
		if dl != nil {
			switch {
			case partial > 0 && !r.counting:
				r.counting = true
				if c.opts.LineTimeout >= 0 {
					r.armed = true
					_ = dl.SetReadDeadline(time.Now().Add(c.opts.LineTimeout))
				} else if r.armed { // the park deadline, and no line timeout
					r.armed = false
					_ = dl.SetReadDeadline(time.Time{})
				}
			case partial == 0 && r.armed && !parking:
				r.armed = false
				_ = dl.SetReadDeadline(time.Time{})
			}
		}
		if partial == 0 && r.raw != nil {
			giveBuffer(r.buf) // (never a chunk: one went once its line was routed)
			r.buf = nil
			c.partial.Store(false) // a line read in several reads is over
			return errIdle
		}
		var n int
		c.partial.Store(partial > 0)
		n, r.err = c.readMore(r)
		if n > 0 {
			c.lastIO.Store(time.Now().UnixNano())
			c.partial.Store(true) // routed (and cleared) once its line ends
		}
		r.end += n
	}
}

// readMore reads once into r.buf[r.end:], taking a buffer (from a pool
// of small buffers) when r.buf is nil. Over a socket it waits for input
// holding no buffer when r.end is 0 (see readRaw).
func (c *Conn) readMore(r *reader) (int, error) {
	if r.raw != nil {
		return readRaw(r.raw, r)
	}
	if r.buf == nil {
		r.buf = takeBuffer()
	}
	return c.rwc.Read(r.buf[r.end:])
}

// buffers are small read buffers, shared by the connections that wait
// for input.
var buffers = sync.Pool{New: func() any { return new([readBufferSize]byte) }}

func takeBuffer() []byte { return buffers.Get().(*[readBufferSize]byte)[:] }

// giveBuffer returns a buffer that takeBuffer gave (any other is left to
// the garbage collector).
func giveBuffer(b []byte) {
	if cap(b) == readBufferSize {
		buffers.Put((*[readBufferSize]byte)(b[:readBufferSize]))
	}
}

// chunks are the buffers that lines longer than a chunk are read into,
// shared by all connections: a status reply of megabytes, read every few
// seconds by an operator's client, reuses them rather than growing (and
// zeroing) a buffer as large as itself each time.
var chunks = sync.Pool{New: func() any { return new([readChunk]byte) }}

func takeChunk() []byte { return chunks.Get().(*[readChunk]byte)[:] }

// giveChunk returns a chunk (any other buffer is left to the garbage
// collector).
func giveChunk(b []byte) {
	if cap(b) == readChunk {
		chunks.Put((*[readChunk]byte)(b[:readChunk]))
	}
}

// joinLong returns the line whose first bytes are in r.long and whose last
// are tail, as one slice of its own, and gives the chunks back.
func (r *reader) joinLong(tail []byte) []byte {
	r.long = append(r.long, tail)
	line := bytes.Join(r.long, nil) // allocated, not zeroed, then filled
	for _, b := range r.long[:len(r.long)-1] {
		giveChunk(b)
	}
	r.long, r.longLen = nil, 0
	return line
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
	if do, ok := m.Get("do"); ok && string(do) != "null" {
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
	if limit := int64(c.opts.MaxInFlight); limit > 0 {
		// running only falls meanwhile (the calls are dispatched here).
		for c.running.Load() >= limit {
			select {
			case <-c.exited: // a call answered
			case <-c.done:
				return
			}
		}
	}
	call := &Call{conn: c, msg: m, id: m.ID(), ticket: &ticket{conn: c}}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.handlers.Add(1)
	c.running.Add(1)
	c.calls++
	sp := c.spare
	c.spare = nil
	if sp == nil {
		c.spares.Add(1)
	}
	c.mu.Unlock()
	if sp != nil {
		sp <- call // an idle server of this connection takes it
		return
	}
	go c.serveLoop(ctx, call)
}

// spareFor is how long a goroutine that served a call waits for the next
// call of its connection before it exits: a connection whose calls come
// one after the other (forwards, an operator's loop) reuses it, its stack
// already grown, rather than start a goroutine per call. A connection's
// first call is not waited after: many connections make only one (workers
// register), and a burst of them would hold a goroutine each.
const spareFor = 100 * time.Millisecond

// serveLoop serves call, then the calls handed to it while it waits as
// the connection's spare server, until it has waited spareFor, or the
// connection has ended.
func (c *Conn) serveLoop(ctx context.Context, call *Call) {
	defer c.spares.Done()
	calls := make(chan *Call, 1)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c.serve(ctx, call)
		c.mu.Lock()
		if c.spare != nil || c.closed || c.calls < 2 {
			// A spare already, the end, or a connection that has made one
			// call only (a registration, an operator's command): no wait.
			c.mu.Unlock()
			return
		}
		c.spare = calls
		c.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(spareFor)
		} else {
			timer.Reset(spareFor)
		}
		select {
		case call = <-calls:
			continue
		case <-timer.C:
		case <-c.done:
		}
		c.mu.Lock()
		mine := c.spare == calls
		if mine {
			c.spare = nil
		}
		c.mu.Unlock()
		if mine {
			return
		}
		call = <-calls // handed a call as the wait ended: serve it
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
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				c.logger.Error("handler panicked", "operation", call.Operation(), "panic", r)
				err = Errorf("Panic", "%v", r)
			}
		}()
		h := c.handler(call.msg)
		if h == nil {
			if op := call.Operation(); op != "" {
				return Errorf("NoMethodError", "unknown operation %q", op)
			}
			return ArgumentError("operation name (\"do\") must be a non-empty string")
		}
		return h(ctx, call)
	}()
	if err != nil {
		if !call.isDone() {
			c.logger.Debug("call failed", "operation", call.Operation(), "error", err)
		}
		if ferr := call.FailError(err); ferr != nil && !errors.Is(ferr, errAlreadyDone) {
			c.logger.Debug("could not send failure", "operation", call.Operation(), "error", ferr)
		}
		return
	}
	if ferr := call.Finish(nil); ferr != nil && !errors.Is(ferr, errAlreadyDone) {
		c.logger.Debug("could not finish call", "operation", call.Operation(), "error", ferr)
	}
}

// handler returns the handler of a call's operation, or nil; looked up
// without making a string of the name when it has no escapes.
func (c *Conn) handler(m *Message) Handler {
	raw, _ := m.Get("do")
	if len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return c.opts.Handlers[string(raw[1:len(raw)-1])]
	}
	op, _ := m.Operation()
	return c.opts.Handlers[op]
}
