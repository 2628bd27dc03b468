package main

import (
	"strings"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/testutil"
)

// blockingWriter blocks every write until released.
type blockingWriter struct {
	release chan struct{}
	out     testutil.Buffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return b.out.Write(p)
}

func TestAsyncWriterNeverBlocks(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	a := newAsyncWriter(w)
	start := time.Now()
	const lines = logQueue + 100
	for i := range lines {
		if _, err := a.Write([]byte("line\n")); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("writes blocked behind a stuck writer for %v", d)
	}
	close(w.release)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	written := strings.Count(w.out.String(), "line\n")
	dropped := int(a.dropped.Load())
	if written+dropped != lines || dropped == 0 {
		t.Errorf("written %d + dropped %d, want %d with some dropped", written, dropped, lines)
	}
	if !strings.Contains(w.out.String(), "log lines dropped") {
		t.Errorf("the drops were not reported")
	}
}
