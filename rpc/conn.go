package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxLineSize is the longest line a connection accepts unless
// [Options.MaxLineSize] says otherwise: 8 MiB.
const DefaultMaxLineSize = 8 << 20

// DefaultWriteTimeout bounds one write on a connection whose transport has
// deadlines (a net.Conn), so that a peer that stops reading cannot block its
// writers forever: the write fails and the connection is closed.
const DefaultWriteTimeout = 30 * time.Second

// DefaultMaxInFlight is the most incoming calls a connection serves at
// once unless [Options.MaxInFlight] says otherwise.
const DefaultMaxInFlight = 64

// DefaultLineTimeout bounds the time from a line's first byte to its
// newline unless [Options.LineTimeout] says otherwise.
const DefaultLineTimeout = 10 * time.Second

// readBufferSize is the reader's buffer while lines are short: taken from
// a pool when input comes, and given back while a socket waits for its
// next line. It doubles, up to readChunk, for a longer line, which then
// takes it (no copy); after a long line the reader goes on with
// readBufferKeep, which long lines that keep coming grow from again. A
// line longer than readChunk is read into chunks of that size, taken from
// a pool and given back once the line is joined (see Conn.read).
const (
	readBufferSize = 1 << 10
	readBufferKeep = 4 << 10
	readChunk      = 64 << 10
)

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
	// MaxInFlight is the most incoming calls unanswered at once, a call
	// being answered once its final reply is written (default
	// DefaultMaxInFlight; negative means no limit). While as many are, the
	// reader reads nothing more, so the peer's further lines wait in the
	// kernel's socket buffer and then in the peer: it is pushed back, and
	// the connection holds at most this many handlers or their replies.
	MaxInFlight int
	// LineTimeout bounds the time from a line's first byte to its newline
	// when the transport has read deadlines (default DefaultLineTimeout;
	// negative means none). A line not completed in time ends the
	// connection with [ErrLineTimeout]. Between lines there is no deadline:
	// an idle connection stays open.
	LineTimeout time.Duration
	// Logger receives bad input and handler failures; nil discards.
	Logger *slog.Logger
	// Parker, if not nil, holds this connection while it is idle, with no
	// goroutine (a socket transport only; see [Parker]); its Run must run.
	Parker *Parker
	// ParkAfter is how long the connection waits for input before it is
	// parked (default DefaultParkAfter; negative: never).
	ParkAfter time.Duration
}

type deadliner interface {
	SetWriteDeadline(time.Time) error
}

type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

// Conn is one end of a protocol connection. Its methods are safe for
// concurrent use.
type Conn struct {
	rwc    io.ReadWriteCloser
	opts   Options
	logger *slog.Logger

	out outbox // the write side
	rd  reader // the read side, owned by Run

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]*pending
	closed  bool
	state   map[string]any

	done      chan struct{} // closed when the connection has ended
	closeOnce sync.Once
	cancel    context.CancelFunc // cancels the handlers' context (under mu)
	handlers  sync.WaitGroup
	spares    sync.WaitGroup // the goroutines that serve calls (see serveLoop)
	spare     chan *Call     // hands a call to the one waiting for one; nil: none waits (under mu)
	calls     int            // calls dispatched (under mu)

	onEnd     func(error) // told the connection's end (under mu)
	resume    func()      // reads on, then finishes; nil once finished (under mu)
	stopAfter func() bool // stops the end with Run's context
	park      parkState   // under mu

	running atomic.Int64  // calls unanswered: their final replies not yet written
	partial atomic.Bool   // part of a line has been read, not its end
	lastIO  atomic.Int64  // when bytes were last read or written (unix ns)
	exited  chan struct{} // signalled (never blocking) as a call is answered or the writer stops
}

// NewConn returns a connection over rwc. Nothing is read until [Conn.Run].
func NewConn(rwc io.ReadWriteCloser, opts Options) *Conn {
	if opts.MaxLineSize <= 0 {
		opts.MaxLineSize = DefaultMaxLineSize
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.LineTimeout == 0 {
		opts.LineTimeout = DefaultLineTimeout
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{
		rwc:    rwc,
		opts:   opts,
		logger: logger,
		done:   make(chan struct{}),
		exited: make(chan struct{}, 1),
	}
	c.out.room.L = &c.out.mu
	c.lastIO.Store(time.Now().UnixNano())
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
		c.endCalls() // no parking from now on
		c.mu.Lock()
		cancel := c.cancel
		parked := c.unparkLocked()
		c.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		_ = c.rwc.Close()
		close(c.done)
		c.wakeWriters()
		if parked {
			go c.finish(nil) // nobody reads: finish here
		}
	})
}

// endCalls refuses new outgoing calls and fails the pending ones: the peer
// can no longer answer them.
func (c *Conn) endCalls() {
	c.mu.Lock()
	c.closed = true
	pend := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, p := range pend {
		p.fail(ErrClosed)
	}
}

// ended reports whether the connection has been shut down.
func (c *Conn) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Run reads the connection until it ends: the peer closes it, ctx is done,
// [Conn.Close] is called, a read fails, a line is too long or too slow. It
// routes every message, then waits for the running handlers before it
// returns. At the end of the peer's input, calls already read are still
// answered when the peer only shut down its sending side (a half-close),
// and cancelled when it is gone. Run returns nil when the connection ended
// normally (end of file, Close or ctx), and the error otherwise. Run (or
// Start) must be called once.
func (c *Conn) Run(ctx context.Context) error {
	done := make(chan error, 1)
	c.begin(ctx, func(err error) { done <- err })
	c.reading()
	return <-done
}

// Start is Run without the wait: the connection is served by goroutines
// of its own (none at all while it is parked, see [Parker]), and ended is
// called, in one of them, with what Run would return, once it has ended
// and its handlers have returned.
func (c *Conn) Start(ctx context.Context, ended func(error)) {
	c.begin(ctx, ended)
	go c.reading()
}

// begin prepares the handlers' context (ctx's values, cancelled when the
// connection ends) and the connection's end with ctx.
func (c *Conn) begin(ctx context.Context, ended func(error)) {
	hctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.cancel = cancel
	c.onEnd = ended
	c.resume = func() { c.read(hctx) }
	closed := c.closed
	c.mu.Unlock()
	c.rd.raw = rawSource(c.rwc)
	c.rd.dl, _ = c.rwc.(readDeadliner)
	if closed {
		cancel()
	}
	c.stopAfter = context.AfterFunc(ctx, func() { c.shutdown() })
}

// reading reads the connection until it ends, then finishes it, or until
// it is parked: then a goroutine started when input comes reads on.
func (c *Conn) reading() {
	c.mu.Lock()
	resume := c.resume
	c.mu.Unlock()
	resume()
}

// finish ends the connection once reading has stopped with err: the calls
// read are answered (after a half-close), the transport is closed, the
// handlers are waited for, and the owner is told.
func (c *Conn) finish(err error) {
	if err == nil && !c.ended() {
		// End of input: nothing more will come, replies included.
		c.endCalls()
		c.drain()
	}
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
	switch {
	case err == nil:
	case errors.Is(err, ErrLineTooLong), errors.Is(err, ErrLineTimeout):
		c.logger.Warn("connection closed", "error", err)
	default:
		c.logger.Error("connection closed", "error", err)
	}
	c.shutdown()
	c.handlers.Wait()
	c.spares.Wait()
	c.stopAfter()
	c.mu.Lock()
	cancel, ended := c.cancel, c.onEnd
	c.onEnd, c.resume = nil, nil
	c.mu.Unlock()
	cancel()
	if ended != nil {
		ended(err)
	}
}

// hangupCheck is how often a half-closed connection whose handlers still
// run is checked for the peer having gone altogether.
const hangupCheck = time.Second

// drain waits, after the end of the peer's input, for the calls read to be
// answered (their final replies written), unless the peer has gone
// altogether (nobody to answer) or the connection is shut down meanwhile.
func (c *Conn) drain() {
	busy := func() bool { return c.running.Load() > 0 || c.writing() }
	if !busy() || peerGone(c.rwc) {
		return
	}
	t := time.NewTicker(hangupCheck)
	defer t.Stop()
	for busy() {
		select {
		case <-c.exited:
		case <-c.done:
			return
		case <-t.C:
			if peerGone(c.rwc) {
				return
			}
		}
	}
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

// Value returns one value of the connection's state, or nil.
func (c *Conn) Value(key string) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state[key]
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

// Idle reports whether nothing is under way on the connection (no call
// unanswered either way, no reply being written, no line half read) and
// nothing has been read or written for at least quiet.
func (c *Conn) Idle(quiet time.Duration) bool {
	if c.running.Load() > 0 || c.writing() || c.partial.Load() || c.Pending() > 0 {
		return false
	}
	return time.Since(time.Unix(0, c.lastIO.Load())) >= quiet
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
	if c.pending == nil {
		c.pending = make(map[uint64]*pending)
	}
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
