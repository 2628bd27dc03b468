package main

import (
	"bytes"
	"fmt"
	"io"
	"sync/atomic"
)

// logQueue is how many log lines may wait for a slow stderr.
const logQueue = 4096

// asyncWriter writes to w from a goroutine of its own, so that a slow or
// stuck stderr (a full pipe to a log shipper) never blocks the controller,
// which logs while it restarts children. Lines beyond the queue are
// dropped and counted; Close writes how many.
type asyncWriter struct {
	w       io.Writer
	lines   chan []byte
	dropped atomic.Uint64
	done    chan struct{}
}

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{w: w, lines: make(chan []byte, logQueue), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *asyncWriter) run() {
	defer close(a.done)
	for b := range a.lines {
		_, _ = a.w.Write(b)
	}
}

// Write queues p (slog writes one record per call) and never blocks.
func (a *asyncWriter) Write(p []byte) (int, error) {
	select {
	case a.lines <- bytes.Clone(p):
	default:
		a.dropped.Add(1)
	}
	return len(p), nil
}

// Close writes what is queued and stops; nothing may Write after it.
func (a *asyncWriter) Close() error {
	close(a.lines)
	<-a.done
	if n := a.dropped.Load(); n > 0 {
		_, err := fmt.Fprintf(a.w, "vigil: %d log lines dropped: stderr was not read fast enough\n", n)
		return err
	}
	return nil
}
