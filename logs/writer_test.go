package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/testutil"
)

// stuckWriter blocks every Write until released: a FIFO nobody reads.
type stuckWriter struct {
	entered chan struct{} // gets a value when a Write starts
	release chan struct{}
	out     testutil.Buffer
}

func newStuckWriter() *stuckWriter {
	return &stuckWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (s *stuckWriter) Write(p []byte) (int, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return s.out.Write(p)
}

func TestWriterCloseGivesUpOnAStuckWriter(t *testing.T) {
	s := newStuckWriter()
	defer close(s.release) // lets the writer's goroutine end before goleak looks
	w := NewWriter(s, WriterOptions{MaxQueue: 1000})
	if _, err := w.Write([]byte("first\n")); err != nil {
		t.Fatal(err)
	}
	<-s.entered // the goroutine is now stuck writing "first"
	const lines = 500
	start := time.Now()
	for i := range lines {
		if _, err := fmt.Fprintf(w, "line %03d\n", i); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("writes waited on a stuck writer for %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	stats, err := w.Close(ctx)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v with a 200ms deadline", d)
	}
	if !errors.Is(err, ErrAbandoned) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want ErrAbandoned and the deadline", err)
	}
	// 1000 bytes hold 111 lines of 9 bytes: the rest were dropped.
	if stats.DroppedFull != lines-111 {
		t.Errorf("dropped because full: %d, want %d", stats.DroppedFull, lines-111)
	}
	if stats.Abandoned != 112 { // "first" being written and the 111 queued
		t.Errorf("abandoned: %d, want 112", stats.Abandoned)
	}
	if stats.Written != 0 || stats.Dropped() != lines+1 {
		t.Errorf("stats %+v: every line should be counted as dropped", stats)
	}
	if !strings.Contains(stats.String(), "389 because the output was not read fast enough") ||
		!strings.Contains(stats.String(), "112 still queued when close gave up") {
		t.Errorf("stats say %q", stats.String())
	}
	if _, err := w.Write([]byte("late\n")); !errors.Is(err, ErrWriterClosed) {
		t.Errorf("Write after Close: %v, want ErrWriterClosed", err)
	}
}

func TestWriterCloseGivesUpOnAFIFONobodyReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// Opened for reading and writing, so that open does not wait for a
	// reader; nobody reads, so the pipe fills and writes block.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f, WriterOptions{})
	line := bytes.Repeat([]byte("x"), 99)
	line = append(line, '\n')
	for range 20000 { // 2 MB: more than the pipe (64 KiB) and the queue (1 MiB) hold
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	stats, err := w.Close(ctx)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v on a stuck FIFO with a 300ms deadline", d)
	}
	if !errors.Is(err, ErrAbandoned) {
		t.Fatalf("Close: %v, want ErrAbandoned", err)
	}
	if stats.Written+stats.Dropped() != 20000 || stats.DroppedFull == 0 || stats.Abandoned == 0 {
		t.Errorf("stats %+v: want 20000 lines counted, some dropped and some abandoned", stats)
	}
	// The FIFO is pollable: the deadline ended the blocked write, so the
	// goroutine is gone (goleak checks it after the tests).
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the writing goroutine is still blocked after Close")
	}
}

func TestWriterWritesEverythingWhenTheOutputKeepsUp(t *testing.T) {
	var out testutil.Buffer
	w := NewWriter(&out, WriterOptions{Name: "vigil"})
	var want strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&want, "line %d\n", i)
		fmt.Fprintf(w, "line %d\n", i)
		time.Sleep(time.Microsecond)
	}
	if _, err := w.Write([]byte("no newline")); err != nil {
		t.Fatal(err)
	}
	want.WriteString("no newline\n")
	stats, err := w.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Errorf("output differs from what was written (%d bytes, want %d)", len(out.String()), want.Len())
	}
	if stats.Written != 1001 || stats.Dropped() != 0 {
		t.Errorf("stats %+v, want 1001 written, none dropped", stats)
	}
	if stats.String() != "no line dropped" {
		t.Errorf("stats say %q", stats.String())
	}
}

// TestWriterLinesNeverSplitNorInterleaved: many goroutines write several
// lines per Write into a small queue over a slow output; every line comes
// out whole, a Write's lines together and in order, and every line is
// counted as written or dropped.
func TestWriterLinesNeverSplitNorInterleaved(t *testing.T) {
	var out testutil.Buffer
	slow := writerFunc(func(p []byte) (int, error) {
		time.Sleep(100 * time.Microsecond)
		return out.Write(p)
	})
	w := NewWriter(slow, WriterOptions{MaxQueue: 4096})
	const goroutines, writes = 8, 300
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range writes {
				// Three lines per Write; the padding makes them long
				// enough that a queue of 4 KiB fills often.
				pad := strings.Repeat("p", (g*writes+i)%80)
				fmt.Fprintf(w, "g%d w%d l0 %s\ng%d w%d l1 %s\ng%d w%d l2\n", g, i, pad, g, i, pad, g, i)
			}
		})
	}
	wg.Wait()
	stats, err := w.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.HasSuffix(text, "\n") {
		t.Fatal("output does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	last := make(map[int]int) // goroutine -> last write seen
	for i := range last {
		last[i] = -1
	}
	for i := 0; i < len(lines); i++ {
		var g, wn, l int
		if _, err := fmt.Sscanf(lines[i], "g%d w%d l%d", &g, &wn, &l); err != nil {
			t.Fatalf("line %d %q is not a whole line: %v", i, lines[i], err)
		}
		pad := strings.Repeat("p", (g*writes+wn)%80)
		want := fmt.Sprintf("g%d w%d l%d %s", g, wn, l, pad)
		if l == 2 {
			want = fmt.Sprintf("g%d w%d l2", g, wn)
		}
		if lines[i] != want {
			t.Fatalf("line %d is %q, want %q", i, lines[i], want)
		}
		if l == 0 {
			if prev, ok := last[g]; ok && wn <= prev {
				t.Fatalf("line %d: goroutine %d's write %d after its write %d", i, g, wn, prev)
			}
			last[g] = wn
		} else {
			// A Write's later lines follow its earlier ones directly
			// (a Write may lose its tail, never its head).
			var pg, pw, pl int
			if i == 0 {
				t.Fatalf("line 0 %q is not a Write's first line", lines[0])
			}
			fmt.Sscanf(lines[i-1], "g%d w%d l%d", &pg, &pw, &pl)
			if pg != g || pw != wn || pl != l-1 {
				t.Fatalf("line %d %q does not follow its Write's previous line (got %q before it)", i, lines[i], lines[i-1])
			}
		}
	}
	total := uint64(goroutines * writes * 3)
	if stats.Written != uint64(len(lines)) || stats.Written+stats.DroppedFull != total {
		t.Errorf("stats %+v: %d lines out, %d written in all", stats, len(lines), total)
	}
	if stats.DroppedFull == 0 {
		t.Errorf("nothing was dropped: the test did not fill the queue")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestWriterReportsDropsInItsOutput(t *testing.T) {
	s := newStuckWriter()
	w := NewWriter(s, WriterOptions{MaxQueue: 100, Name: "vigil"})
	w.Write([]byte("first\n"))
	<-s.entered
	for i := range 20 {
		fmt.Fprintf(w, "line %02d\n", i) // 8 bytes: 12 fit in 100
	}
	close(s.release)
	// Once the queue has drained, the next line gets the notice before it.
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().Written < 13 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	w.Write([]byte("after\n"))
	for w.Stats().Written < 15 && time.Now().Before(deadline) { // room for Close's notice
		time.Sleep(time.Millisecond)
	}
	stats, err := w.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	want.WriteString("first\n")
	for i := range 12 {
		fmt.Fprintf(&want, "line %02d\n", i)
	}
	want.WriteString("vigil: 8 lines dropped: the output was not read fast enough\nafter\n")
	want.WriteString("vigil: 8 lines dropped: 8 because the output was not read fast enough\n")
	if got := s.out.String(); got != want.String() {
		t.Errorf("output:\n%s\nwant:\n%s", got, want.String())
	}
	if stats.DroppedFull != 8 {
		t.Errorf("stats %+v, want 8 dropped", stats)
	}
}

func TestWriterCountsFailedWrites(t *testing.T) {
	boom := errors.New("boom")
	var calls int
	fail := writerFunc(func(p []byte) (int, error) {
		calls++
		if calls == 1 {
			return 0, boom
		}
		return len(p), nil
	})
	w := NewWriter(fail, WriterOptions{})
	w.Write([]byte("a\nb\n"))
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().DroppedFailed == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	w.Write([]byte("c\n"))
	stats, err := w.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if stats.DroppedFailed != 2 || stats.Written != 1 || !errors.Is(stats.Err, boom) {
		t.Errorf("stats %+v, want 2 failed (boom), 1 written", stats)
	}
	if !strings.Contains(stats.String(), "2 because writing failed (boom)") {
		t.Errorf("stats say %q", stats.String())
	}
}

func TestWriterDropsLinesThatDoNotFitWhole(t *testing.T) {
	s := newStuckWriter()
	w := NewWriter(s, WriterOptions{MaxQueue: 10})
	w.Write([]byte("x\n"))
	<-s.entered
	dropped, err := w.Queue([]byte("aaaa\nbbbb\ncccc\n")) // 15 bytes: two lines fit
	if err != nil || dropped != 1 {
		t.Fatalf("Queue: dropped %d, %v; want 1", dropped, err)
	}
	dropped, _ = w.Queue([]byte(strconv.Itoa(12345678901)))
	if dropped != 1 {
		t.Fatalf("a line longer than the queue: dropped %d, want 1", dropped)
	}
	close(s.release)
	if _, err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.out.String(); got != "x\naaaa\nbbbb\n" {
		t.Errorf("output %q", got)
	}
}
