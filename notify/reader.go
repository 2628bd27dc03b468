package notify

import (
	"bufio"
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
// for concurrent use.
type Reader struct {
	br      *bufio.Reader
	logger  *slog.Logger
	skipped int
}

// NewReader returns a Reader of r that logs skipped lines to logger (nil
// discards).
func NewReader(r io.Reader, logger *slog.Logger) *Reader {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reader{br: bufio.NewReaderSize(r, MaxLine), logger: logger}
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
		line, err := r.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			n := len(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.br.ReadSlice('\n')
				n += len(line)
			}
			r.skip("line too long", slog.Int("bytes", n))
			if err != nil {
				return Message{}, r.readErr(err)
			}
			continue
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			var m Message
			if perr := json.Unmarshal(trimmed, &m); perr != nil {
				r.skip("garbage line", slog.String("line", sample(trimmed)), slog.Any("error", perr))
			} else {
				return m, nil
			}
		}
		if err != nil {
			return Message{}, r.readErr(err)
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
