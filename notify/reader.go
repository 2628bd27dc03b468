package notify

import (
	"fmt"
	"io"
	"log/slog"
	"os"
)

// MaxLine is the longest line, in bytes with its newline, that Reader
// accepts; longer lines are skipped.
const MaxLine = 64 * 1024

// Pipe returns a pipe for a child's readiness messages. The parent reads
// parentEnd (close-on-exec: other children never inherit it) with a Reader;
// childEnd is handed to the child, e.g. as exec.Cmd.ExtraFiles[0] (fd 3,
// with NOTIFY_PIPE=3 in its environment: os/exec clears close-on-exec on
// the child's copy). The parent must close its childEnd once the child has
// started, so that the Reader sees io.EOF when the child exits.
func Pipe() (parentEnd *os.File, childEnd *os.File, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("notify: pipe: %w", err)
	}
	return r, w, nil
}

// Reader reads a child's messages, one JSON object per line, with a
// Parser. It is not safe for concurrent use. Its buffers start small and
// grow only for long lines and long reads: a controller may hold one per
// child.
type Reader struct {
	r    io.Reader
	p    Parser
	buf  []byte    // what a read takes
	msgs []Message // msgs[next:] are parsed, not yet returned
	next int
	err  error // the read error after what is parsed
}

// minBuffer is a Reader's first buffer: a message fits in it.
const minBuffer = 256

// maxRead is the most a Reader's read takes: its buffer grows to it while
// reads fill it.
const maxRead = 4096

// NewReader returns a Reader of r that logs skipped lines to logger (nil
// discards).
func NewReader(r io.Reader, logger *slog.Logger) *Reader {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reader{r: r, p: Parser{logger: logger}}
}

// Next returns the next message. Empty and blank lines are skipped
// silently; garbage is logged at warn level, counted (see Skipped) and
// skipped: a line that is not a JSON object, one whose known fields have
// the wrong types, or one longer than MaxLine. A last line without a
// newline is read as a line. Next returns io.EOF at the end of the input,
// and another read error wrapped: closing a pipe's parentEnd from another
// goroutine ends a blocked Next with an error wrapping os.ErrClosed.
func (r *Reader) Next() (Message, error) {
	for {
		if r.next < len(r.msgs) {
			m := r.msgs[r.next]
			r.msgs[r.next] = Message{}
			r.next++
			return m, nil
		}
		r.msgs, r.next = r.msgs[:0], 0
		if r.err != nil {
			return Message{}, r.readErr(r.err)
		}
		if r.buf == nil {
			r.buf = make([]byte, minBuffer)
		}
		n, err := r.r.Read(r.buf)
		r.msgs = r.p.Feed(r.buf[:n], r.msgs)
		if n == len(r.buf) && len(r.buf) < maxRead {
			r.buf = make([]byte, 2*len(r.buf))
		}
		if err != nil {
			r.err = err
			r.msgs = r.p.End(r.msgs)
		}
	}
}

// Skipped returns how many lines have been skipped as garbage.
func (r *Reader) Skipped() int { return r.p.Skipped() }

func (r *Reader) readErr(err error) error {
	if err == io.EOF {
		return io.EOF
	}
	return fmt.Errorf("notify: read: %w", err)
}

// sample shortens a garbage line for the log.
func sample(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
