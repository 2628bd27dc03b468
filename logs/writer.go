package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// DefaultWriterQueue is how many bytes a [Writer] queues unless
// [WriterOptions.MaxQueue] says otherwise: 1 MiB.
const DefaultWriterQueue = 1 << 20

// ErrWriterClosed is returned by [Writer.Write] after [Writer.Close].
var ErrWriterClosed = errors.New("logs: writer closed")

// ErrAbandoned is wrapped by the error of [Writer.Close] when its context
// ended before everything queued was written.
var ErrAbandoned = errors.New("logs: queued lines abandoned")

// WriterOptions configure a [Writer]. The zero value is usable.
type WriterOptions struct {
	// MaxQueue bounds the bytes waiting to be written (0 =
	// DefaultWriterQueue). A line that does not fit is dropped whole.
	MaxQueue int
	// Name, when set, makes the writer report its drops in the output
	// itself: "NAME: 12 lines dropped: the output was not read fast
	// enough", written before the next line that fits and at Close.
	Name string
}

// WriterStats counts what a [Writer] did with the lines it was given.
type WriterStats struct {
	// Written is how many lines the underlying writer accepted.
	Written uint64
	// DroppedFull is how many lines were dropped because the queue was full:
	// the underlying writer did not keep up.
	DroppedFull uint64
	// DroppedFailed is how many lines were lost because the underlying
	// writer returned an error (Err holds the first).
	DroppedFailed uint64
	// DroppedClosed is how many lines were written after Close.
	DroppedClosed uint64
	// Abandoned is how many queued lines Close gave up on when its context
	// ended (the underlying writer was stuck).
	Abandoned uint64
	// Err is the first error of the underlying writer, if any.
	Err error
}

// Dropped is every line lost, whatever the reason.
func (s WriterStats) Dropped() uint64 {
	return s.DroppedFull + s.DroppedFailed + s.DroppedClosed + s.Abandoned
}

// String says how many lines were dropped and why, or "no line dropped".
func (s WriterStats) String() string {
	if s.Dropped() == 0 {
		return "no line dropped"
	}
	var why []string
	if s.DroppedFull > 0 {
		why = append(why, fmt.Sprintf("%d because the output was not read fast enough", s.DroppedFull))
	}
	if s.DroppedFailed > 0 {
		why = append(why, fmt.Sprintf("%d because writing failed (%v)", s.DroppedFailed, s.Err))
	}
	if s.DroppedClosed > 0 {
		why = append(why, fmt.Sprintf("%d written after close", s.DroppedClosed))
	}
	if s.Abandoned > 0 {
		why = append(why, fmt.Sprintf("%d still queued when close gave up", s.Abandoned))
	}
	return fmt.Sprintf("%d %s dropped: %s", s.Dropped(), plural(s.Dropped(), "line", "lines"), strings.Join(why, ", "))
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Writer writes lines to an io.Writer from a goroutine of its own, so that
// a slow or stuck output (a terminal scrolled back, a full pipe to a log
// shipper, a FIFO nobody reads) never blocks the goroutines that log.
//
// [Writer.Write] never blocks: it queues whole lines up to a byte bound and
// drops, and counts, the lines beyond it. Lines are never split nor
// interleaved: each Write's lines reach the underlying writer together, in
// the order of the Writes. [Writer.Close] writes what is queued but gives up
// when its context ends. Its methods are safe for concurrent use.
type Writer struct {
	w    io.Writer
	max  int
	name string

	mu       sync.Mutex
	queue    []byte
	lines    uint64 // lines in queue
	inflight uint64 // lines being written
	closed   bool
	abandon  bool
	stats    WriterStats
	unwarned uint64 // lines dropped since the last notice

	wake chan struct{}
	done chan struct{}
}

// NewWriter returns a Writer over w and starts its goroutine, which runs
// until [Writer.Close].
func NewWriter(w io.Writer, opts WriterOptions) *Writer {
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = DefaultWriterQueue
	}
	lw := &Writer{
		w:    w,
		max:  opts.MaxQueue,
		name: opts.Name,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	go lw.run()
	return lw
}

// Write queues the lines of p and returns len(p), nil: a Writer takes what
// it is given, and drops what does not fit, without making its caller wait
// or fail. A final piece of p without a newline is written as a line of its
// own. After Close it returns 0 and [ErrWriterClosed].
func (w *Writer) Write(p []byte) (int, error) {
	if _, err := w.Queue(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Queue is Write, saying how many of p's lines were dropped because the
// queue was full (0 when all were queued).
func (w *Writer) Queue(p []byte) (dropped int, err error) {
	if len(p) == 0 {
		return 0, nil
	}
	w.mu.Lock()
	if w.closed {
		n := countLines(p)
		w.stats.DroppedClosed += uint64(n)
		w.mu.Unlock()
		return n, ErrWriterClosed
	}
	if w.unwarned > 0 && w.name != "" {
		n := w.unwarned
		if w.noticeLocked(fmt.Sprintf("%d %s dropped: the output was not read fast enough", n, plural(n, "line", "lines"))) {
			w.unwarned = 0
		}
	}
	queued := 0
	if len(w.queue)+len(p)+1 <= w.max {
		// The usual case: all of p fits.
		w.queue = append(w.queue, p...)
		if p[len(p)-1] != '\n' {
			w.queue = append(w.queue, '\n')
		}
		queued = countLines(p)
	} else {
		// As many whole lines as fit; the rest is dropped.
		for rest := p; len(rest) > 0; {
			line := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				line = rest[:i+1]
			}
			rest = rest[len(line):]
			need := len(line)
			if line[len(line)-1] != '\n' {
				need++
			}
			if len(w.queue)+need > w.max {
				dropped = 1 + countLines(rest)
				break
			}
			w.queue = append(w.queue, line...)
			if need > len(line) {
				w.queue = append(w.queue, '\n')
			}
			queued++
		}
	}
	w.lines += uint64(queued)
	w.stats.DroppedFull += uint64(dropped)
	w.unwarned += uint64(dropped)
	w.mu.Unlock()
	if queued > 0 {
		w.signal()
	}
	return dropped, nil
}

// noticeLocked queues "NAME: msg" if it fits, and says whether it did.
func (w *Writer) noticeLocked(msg string) bool {
	if len(w.queue)+len(w.name)+len(msg)+3 > w.max {
		return false
	}
	w.queue = append(w.queue, w.name...)
	w.queue = append(w.queue, ": "...)
	w.queue = append(w.queue, msg...)
	w.queue = append(w.queue, '\n')
	w.lines++
	return true
}

// countLines counts the lines of p, a final piece without a newline
// included.
func countLines(p []byte) int {
	n := bytes.Count(p, []byte{'\n'})
	if len(p) > 0 && p[len(p)-1] != '\n' {
		n++
	}
	return n
}

func (w *Writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Stats returns the counts so far.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// run is the writing goroutine: it takes the whole queue at once and writes
// it with one call, so a backlog costs one write, not one per line.
func (w *Writer) run() {
	defer close(w.done)
	var buf []byte
	for {
		w.mu.Lock()
		if w.abandon {
			w.mu.Unlock()
			return
		}
		buf, w.queue = w.queue, buf[:0]
		lines := w.lines
		w.lines = 0
		w.inflight = lines
		closed := w.closed
		w.mu.Unlock()
		if len(buf) > 0 {
			n, err := w.w.Write(buf)
			w.mu.Lock()
			w.inflight = 0
			if w.abandon { // Close counted these lines as abandoned
				w.mu.Unlock()
				return
			}
			if err != nil {
				if w.stats.Err == nil {
					w.stats.Err = err
				}
				if n < 0 || n > len(buf) {
					n = 0
				}
				lost := uint64(countLines(buf[n:]))
				w.stats.DroppedFailed += lost
				w.stats.Written += lines - lost
			} else {
				w.stats.Written += lines
			}
			w.mu.Unlock()
			continue // look again: more may have come, or an abandon
		}
		if closed {
			return
		}
		<-w.wake
	}
}

// deadliner is an underlying writer whose blocked Write a deadline ends (a
// net.Conn, a pollable pipe).
type deadliner interface {
	SetWriteDeadline(time.Time) error
}

// Close stops the writer: later Writes are dropped, what is queued is
// written, and the goroutine ends. When ctx ends first, Close gives up:
// the lines still queued or being written are counted as abandoned, a write in progress is
// interrupted if the underlying writer has write deadlines, and the
// returned error wraps [ErrAbandoned] and ctx's error. Otherwise the
// goroutine stays blocked in the underlying Write until that returns, and
// then ends without writing more. With [WriterOptions.Name] set, a last
// line reports the drops when any happened ("NAME: " and the stats'
// String).
//
// The stats count every line given to the writer. Close may be called more
// than once; later calls wait the same way and return the same counts.
func (w *Writer) Close(ctx context.Context) (WriterStats, error) {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		if w.name != "" && w.stats.Dropped() > 0 {
			w.noticeLocked(w.stats.String())
		}
	}
	w.mu.Unlock()
	w.signal()
	select {
	case <-w.done:
		return w.Stats(), nil
	case <-ctx.Done():
	}
	w.mu.Lock()
	if !w.abandon {
		w.abandon = true
		w.stats.Abandoned += w.lines + w.inflight
		w.lines, w.inflight = 0, 0
		w.queue = nil
	}
	stats := w.stats
	w.mu.Unlock()
	if d, ok := w.w.(deadliner); ok {
		_ = d.SetWriteDeadline(time.Now())
	}
	return stats, fmt.Errorf("%w: %s: %w", ErrAbandoned, stats, context.Cause(ctx))
}
