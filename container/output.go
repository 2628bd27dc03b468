package container

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/vigild/vigil/logs"
)

const (
	// maxLine: longer lines are split into pieces of this size.
	maxLine = 16 << 10
	// outputCloseTimeout bounds how long the output writer may take to
	// write what is queued when the container or controller is done: a
	// stuck output (a FIFO nobody reads) must not hold up the exit.
	outputCloseTimeout = 500 * time.Millisecond
)

// newOutput returns the bounded writer the children's lines go to (w nil:
// os.Stdout); max bounds the bytes queued (0: logs.DefaultWriterQueue).
func newOutput(w io.Writer, max int) *logs.Writer {
	if w == nil {
		w = os.Stdout
	}
	return logs.NewWriter(w, logs.WriterOptions{MaxQueue: max, Name: "vigil"})
}

// closeOutput writes what is queued, giving up after outputCloseTimeout.
func closeOutput(w *logs.Writer, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), outputCloseTimeout)
	defer cancel()
	if _, err := w.Close(ctx); err != nil && logger != nil {
		logger.Warn("children's output abandoned: the output is not being read", "error", err)
	}
}

// copyLines reads r to its end, queueing each line on out with prefix.
// Lines dropped are counted in dropped and logged once per run of drops.
func copyLines(r io.Reader, out *logs.Writer, prefix string, dropped *atomic.Uint64, logger *slog.Logger, name string) {
	br := bufio.NewReaderSize(r, maxLine)
	buf := make([]byte, 0, len(prefix)+256)
	var run uint64
	flush := func() {
		if run > 0 && logger != nil {
			logger.Warn("child output dropped: output buffer full", "child", name, "lines", run)
		}
		run = 0
	}
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			buf = append(append(buf[:0], prefix...), line...)
			if line[len(line)-1] != '\n' {
				buf = append(buf, '\n')
			}
			if n, _ := out.Queue(buf); n == 0 {
				flush()
			} else {
				run++
				dropped.Add(1)
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			flush()
			return
		}
	}
}
