package rpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// DefaultMaxLineSize is the longest line a connection accepts unless
// [Options.MaxLineSize] says otherwise: 8 MiB.
const DefaultMaxLineSize = 8 << 20

// DefaultWriteTimeout bounds one write on a connection whose transport has
// deadlines (a net.Conn), so that a peer that stops reading cannot block its
// writers forever: the write fails and the connection is closed.
const DefaultWriteTimeout = 30 * time.Second

// readBufferSize is the reader's buffer. Longer lines are gathered in a
// separate slice, so that an idle connection costs little memory.
const readBufferSize = 4096

// Handler serves one incoming call. It may send intermediate replies with
// [Call.Reply] and end the call with [Call.Finish] or [Call.Fail]. If it
// returns without ending the call, a nil error finishes it with no fields
// and a non-nil error fails it with {"error":{"class","message"}}. A panic
// is recovered and fails the call the same way. ctx is cancelled when the
// connection ends.
type Handler func(ctx context.Context, call *Call) error

// Handlers maps operation names to their handlers.
type Handlers map[string]Handler

// Options configures a [Conn]. The zero value is usable: a connecting side
// with no handlers, the default line limit and no logging.
type Options struct {
	// Accepted is true on the side that accepted the connection (the
	// supervisor): its calls are numbered 3, 5, 7, …; otherwise 2, 4, 6, ….
	Accepted bool
	// Handlers serves incoming calls. An unknown operation gets a failed
	// reply of class "NoMethodError" that names it.
	Handlers Handlers
	// MaxLineSize is the longest line accepted (default DefaultMaxLineSize).
	MaxLineSize int
	// WriteTimeout bounds each write when the transport supports write
	// deadlines (default DefaultWriteTimeout; negative means none).
	WriteTimeout time.Duration
	// Logger receives bad input and handler failures; nil discards.
	Logger *slog.Logger
}

type deadliner interface {
	SetWriteDeadline(time.Time) error
}

// Conn is one end of a protocol connection. Its methods are safe for
// concurrent use.
type Conn struct {
	rwc    io.ReadWriteCloser
	opts   Options
	logger *slog.Logger

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]*pending
	closed  bool
	state   map[string]any

	done      chan struct{} // closed when the connection has ended
	closeOnce sync.Once
	cancel    context.CancelFunc // cancels the handlers' context (under mu)
	handlers  sync.WaitGroup
}

// NewConn returns a connection over rwc. Nothing is read until [Conn.Run].
func NewConn(rwc io.ReadWriteCloser, opts Options) *Conn {
	if opts.MaxLineSize <= 0 {
		opts.MaxLineSize = DefaultMaxLineSize
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{
		rwc:     rwc,
		opts:    opts,
		logger:  logger,
		pending: make(map[uint64]*pending),
		done:    make(chan struct{}),
	}
	if opts.Accepted {
		c.nextID = 1
	}
	return c
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close ends the connection: the transport is closed, which makes [Conn.Run]
// return. It is safe to call more than once.
func (c *Conn) Close() error {
	c.shutdown()
	return nil
}

// shutdown marks the connection closed, fails every pending call, cancels
// the handlers and closes the transport.
func (c *Conn) shutdown() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		pend := c.pending
		c.pending = nil
		cancel := c.cancel
		c.mu.Unlock()
		for _, p := range pend {
			p.fail(ErrClosed)
		}
		if cancel != nil {
			cancel()
		}
		_ = c.rwc.Close()
		close(c.done)
	})
}

// Run reads the connection until it ends: the peer closes it, ctx is done,
// [Conn.Close] is called, a read fails, or a line is too long. It routes
// every message, then waits for the running handlers before it returns.
// It returns nil when the connection ended normally (end of file, Close or
// ctx), and the error otherwise. Run must be called once.
func (c *Conn) Run(ctx context.Context) error {
	// The handlers' context: ctx's values, cancelled when the connection
	// ends.
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.cancel = cancel
	closed := c.closed
	c.mu.Unlock()
	if closed {
		cancel()
	}
	stop := context.AfterFunc(ctx, func() { c.shutdown() })
	err := c.read(hctx)
	stop()
	if err != nil {
		select {
		case <-c.done: // closed on purpose: the read error is its echo
			err = nil
		default:
			if errors.Is(err, net.ErrClosed) { // the owner closed the transport
				err = nil
			}
		}
	}
	if err != nil {
		c.logger.Error("connection closed", "error", err)
	}
	c.shutdown()
	c.handlers.Wait()
	return err
}

// read is the reader loop; ctx is the handlers' context.
func (c *Conn) read(ctx context.Context) error {
	r := bufio.NewReaderSize(c.rwc, readBufferSize)
	var long []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long)+len(chunk) > c.opts.MaxLineSize {
				return fmt.Errorf("%w: over %d bytes", ErrLineTooLong, c.opts.MaxLineSize)
			}
			long = append(long, chunk...)
			continue
		}
		if err != nil {
			if err == io.EOF {
				if len(long)+len(chunk) > 0 {
					c.logger.Warn("partial line at end of connection ignored", "bytes", len(long)+len(chunk))
				}
				return nil
			}
			return err
		}
		var line []byte
		if long != nil {
			line = append(long, chunk...)
			long = nil
		} else {
			line = bytes.Clone(chunk)
		}
		if len(line)-1 > c.opts.MaxLineSize {
			return fmt.Errorf("%w: over %d bytes", ErrLineTooLong, c.opts.MaxLineSize)
		}
		c.route(ctx, line[:len(line)-1])
	}
}

// route handles one line as PROTOCOL.md says: a reply to a pending call, a
// new call, a late reply, or garbage.
func (c *Conn) route(ctx context.Context, line []byte) {
	m, err := Parse(line)
	if err != nil {
		c.logger.Warn("ignoring bad message", "error", err)
		return
	}
	id := m.ID()
	if id == nil {
		c.logger.Warn("ignoring message without id", "message", truncate(m.line))
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
	c.logger.Debug("ignoring reply to no pending call", "id", string(id))
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// dispatch runs the handler of an incoming call in its own goroutine.
func (c *Conn) dispatch(ctx context.Context, m *Message) {
	call := &Call{conn: c, msg: m, id: m.ID()}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.handlers.Add(1)
	c.mu.Unlock()
	go c.serve(ctx, call)
}

func (c *Conn) serve(ctx context.Context, call *Call) {
	defer c.handlers.Done()
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

// write sends one encoded message. A failed write closes the connection.
func (c *Conn) write(b []byte) error {
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if d, ok := c.rwc.(deadliner); ok && c.opts.WriteTimeout > 0 {
		_ = d.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
		// An armed deadline wakes the process when it expires, write or not.
		defer d.SetWriteDeadline(time.Time{})
	}
	if _, err := c.rwc.Write(b); err != nil {
		c.shutdown()
		return fmt.Errorf("%w: write: %w", ErrClosed, err)
	}
	return nil
}

// State returns a copy of the connection's state: values that its owner
// attached with [Conn.MergeState].
func (c *Conn) State() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := make(map[string]any, len(c.state))
	for k, v := range c.state {
		s[k] = v
	}
	return s
}

// MergeState merges values into the connection's state.
func (c *Conn) MergeState(values map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		c.state = make(map[string]any, len(values))
	}
	for k, v := range values {
		c.state[k] = v
	}
}

// Pending returns how many outgoing calls wait for their final reply.
func (c *Conn) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Call sends an operation with the fields of params (a struct, a map, a
// json.RawMessage holding an object, a *Message whose fields are copied, or
// nil) and waits for its final reply. onReply, if not nil, gets each
// intermediate reply in order, in the caller's goroutine; an error from it
// abandons the call and is returned.
//
// A failed final reply is returned together with a *[RemoteError]. When
// ctx ends first, Call returns ctx's error and a reply that arrives later is
// ignored. When the connection ends first, the error wraps [ErrClosed].
func (c *Conn) Call(ctx context.Context, operation string, params any, onReply func(*Message) error) (*Message, error) {
	p := &pending{signal: make(chan struct{}, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.nextID += 2
	id := c.nextID
	c.pending[id] = p
	c.mu.Unlock()

	buf := make([]byte, 0, 64)
	buf = strconv.AppendUint(append(buf, `{"id":`...), id, 10)
	buf = append(buf, `,"do":`...)
	buf = strconv.AppendQuote(buf, operation) // a Go-quoted ASCII name is valid JSON
	var err error
	if m, ok := params.(*Message); ok {
		buf = append(m.appendFields(buf, "id", "do"), '}', '\n')
	} else if buf, err = appendBody(buf, params); err != nil {
		c.forget(id)
		return nil, fmt.Errorf("call %s: %w", operation, err)
	}
	if err := c.write(buf); err != nil {
		c.forget(id)
		return nil, fmt.Errorf("call %s: %w", operation, err)
	}
	for {
		msgs, final, perr := p.take()
		for _, m := range msgs {
			if m.Finished() {
				if m.Failed() {
					return m, remoteError(m)
				}
				return m, nil
			}
			if onReply != nil {
				if err := onReply(m); err != nil {
					c.forget(id)
					return nil, err
				}
			}
		}
		if final {
			return nil, fmt.Errorf("call %s: %w", operation, perr)
		}
		select {
		case <-p.signal:
		case <-ctx.Done():
			c.forget(id)
			return nil, fmt.Errorf("call %s: %w", operation, ctx.Err())
		}
	}
}

// forget drops a pending call, so that its late replies are ignored.
func (c *Conn) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// pending is an outgoing call waiting for replies: an unbounded queue that
// the reader fills and the caller drains, so a slow caller never blocks the
// reader.
type pending struct {
	mu     sync.Mutex
	queue  []*Message
	err    error
	signal chan struct{}
}

func (p *pending) push(m *Message) {
	p.mu.Lock()
	p.queue = append(p.queue, m)
	p.mu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

func (p *pending) fail(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// take returns the queued replies and, once the call has failed, its error.
func (p *pending) take() ([]*Message, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queue
	p.queue = nil
	return q, p.err != nil, p.err
}
