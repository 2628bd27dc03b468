package container

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
)

const (
	// maxLine: longer lines are split into pieces of this size.
	maxLine = 16 << 10
	// defaultOutputBuffer bounds the bytes queued for the output writer.
	defaultOutputBuffer = 1 << 20
)

// lineSink serialises prefixed lines from every child onto one writer. Push
// never blocks: when more than max bytes are queued the line is dropped and
// the caller counts it. One goroutine (run) writes; close stops it after it
// has written what is queued.
type lineSink struct {
	w       io.Writer
	max     int
	mu      sync.Mutex
	queue   []byte
	closed  bool
	wake    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64 // total, for tests and logs
}

func newLineSink(w io.Writer, max int) *lineSink {
	if w == nil {
		w = os.Stdout
	}
	if max <= 0 {
		max = defaultOutputBuffer
	}
	s := &lineSink{w: w, max: max, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.run()
	return s
}

// push queues prefix+line+"\n"; it reports false when the line was dropped.
func (s *lineSink) push(prefix string, line []byte) bool {
	n := len(prefix) + len(line) + 1
	s.mu.Lock()
	if s.closed || len(s.queue)+n > s.max {
		s.mu.Unlock()
		s.dropped.Add(1)
		return false
	}
	s.queue = append(s.queue, prefix...)
	s.queue = append(s.queue, line...)
	s.queue = append(s.queue, '\n')
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

func (s *lineSink) run() {
	defer close(s.done)
	var buf []byte
	for {
		s.mu.Lock()
		buf, s.queue = s.queue, buf[:0]
		closed := s.closed
		s.mu.Unlock()
		if len(buf) > 0 {
			_, _ = s.w.Write(buf) // a failing writer loses output, never blocks children
		}
		if closed {
			s.mu.Lock()
			empty := len(s.queue) == 0
			s.mu.Unlock()
			if empty {
				return
			}
			continue
		}
		<-s.wake
	}
}

// close writes what is queued, stops the writer and waits for it.
func (s *lineSink) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	<-s.done
}

// copyLines reads r to its end, pushing each line to sink with prefix. Lines
// dropped are counted in dropped and logged once per run of drops.
func copyLines(r io.Reader, sink *lineSink, prefix string, dropped *atomic.Uint64, logger *slog.Logger, name string) {
	br := bufio.NewReaderSize(r, maxLine)
	var run uint64
	flush := func() {
		if run > 0 {
			logger.Warn("child output dropped: output buffer full", "child", name, "lines", run)
			run = 0
		}
	}
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if line[len(line)-1] == '\n' {
				line = line[:len(line)-1]
			}
			if sink.push(prefix, line) {
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
