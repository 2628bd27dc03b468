package notify

import (
	"bytes"
	"encoding/json"
	"errors"
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

// Reader reads a child's messages, one JSON object per line. It is not safe
// for concurrent use. Its buffer starts small and grows only for long
// lines: a controller holds one per child.
type Reader struct {
	r          io.Reader
	buf        []byte // buf[start:end] is read, not yet returned
	start, end int
	err        error // the read error after what is buffered
	logger     *slog.Logger
	skipped    int
}

// minBuffer is a Reader's first buffer: a message fits in it.
const minBuffer = 256

// NewReader returns a Reader of r that logs skipped lines to logger (nil
// discards).
func NewReader(r io.Reader, logger *slog.Logger) *Reader {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reader{r: r, logger: logger}
}

// errLineTooLong says a line longer than MaxLine was skipped (its length
// is returned with it).
var errLineTooLong = errors.New("line too long")

// readLine returns the next line (without its newline; a last line
// without one is a line), or errLineTooLong and the length of a line it
// skipped, or the read error once nothing is left. The line is valid until
// the next call.
func (r *Reader) readLine() ([]byte, int, error) {
	skipping := 0 // bytes of a too long line skipped so far
	for {
		if i := bytes.IndexByte(r.buf[r.start:r.end], '\n'); i >= 0 {
			line := r.buf[r.start : r.start+i]
			r.start += i + 1
			if skipping > 0 {
				return nil, skipping + i + 1, errLineTooLong
			}
			return line, 0, nil
		}
		if r.err != nil {
			if skipping > 0 {
				n := skipping + r.end - r.start
				r.start = r.end
				return nil, n, errLineTooLong
			}
			if r.start < r.end {
				line := r.buf[r.start:r.end]
				r.start = r.end
				return line, 0, nil
			}
			return nil, 0, r.err
		}
		// Room to read more: compact, grow, or skip a line too long.
		if r.start > 0 {
			r.end = copy(r.buf, r.buf[r.start:r.end])
			r.start = 0
		}
		if r.end == len(r.buf) {
			switch {
			case len(r.buf) < MaxLine:
				grown := make([]byte, min(max(2*len(r.buf), minBuffer), MaxLine))
				copy(grown, r.buf[:r.end])
				r.buf = grown
			default:
				skipping += r.end
				r.end = 0
			}
		}
		n, err := r.r.Read(r.buf[r.end:])
		r.end += n
		if err != nil {
			r.err = err
		}
	}
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
		line, n, err := r.readLine()
		if errors.Is(err, errLineTooLong) {
			r.skip("line too long", slog.Int("bytes", n))
			continue
		}
		if err != nil {
			return Message{}, r.readErr(err)
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			var m Message
			if perr := json.Unmarshal(trimmed, &m); perr != nil {
				r.skip("garbage line", slog.String("line", sample(trimmed)), slog.Any("error", perr))
			} else {
				return m, nil
			}
		}
	}
}

// Skipped returns how many lines have been skipped as garbage.
func (r *Reader) Skipped() int { return r.skipped }

func (r *Reader) skip(msg string, attrs ...any) {
	r.skipped++
	r.logger.Warn("notify: "+msg+" skipped", attrs...)
}

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
