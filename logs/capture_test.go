package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/testutil"
)

// quiet is settings with every destination off: lines go to the rings only.
var quiet = Settings{Format: FormatText, RingLines: 1000}

// newHub returns a hub closed at the end of the test.
func newHub(t *testing.T, opts Options) *Hub {
	t.Helper()
	if opts.Settings == (Settings{}) {
		opts.Settings = quiet
	}
	h := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("hub close: %v", err)
		}
	})
	return h
}

// texts returns the lines' texts.
func texts(lines []Line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = string(l.Text)
	}
	return out
}

// closeHub closes h, failing the test unless it is done within d.
func closeHub(t *testing.T, h *Hub, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitDone(t *testing.T, c *Capture) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Wait(ctx); err != nil {
		t.Fatalf("capture did not end: %v", err)
	}
}

func TestCaptureKeepsTheStreamsApart(t *testing.T) {
	h := newHub(t, Options{})
	ch := startChild(t, "script", "out:one", "err:oops", "out:two", "err:again")
	c := h.Capture(ch.id("web", 1), ch.stdout, ch.stderr)
	ch.wait(t)
	waitDone(t, c)

	one := 1
	out := h.Lines(Query{Service: "web", Instance: &one, Stream: Stdout})
	if got := strings.Join(texts(out), ","); got != "one,two" {
		t.Errorf("stdout: %q", got)
	}
	errLines := h.Lines(Query{Stream: Stderr})
	if got := strings.Join(texts(errLines), ","); got != "oops,again" {
		t.Errorf("stderr: %q", got)
	}
	for _, l := range append(out, errLines...) {
		if l.Service != "web" || l.Instance != 1 || l.PID != ch.cmd.Process.Pid || l.Time.IsZero() {
			t.Errorf("line %q: identity %+v, time %v", l.Text, l.Identity, l.Time)
		}
	}
	if l := errLines[0]; l.Stream != Stderr {
		t.Errorf("stderr line has stream %v", l.Stream)
	}
	if all := h.Lines(Query{}); len(all) != 4 {
		t.Errorf("every line: %q", texts(all))
	}
	if st := c.Stats(); st.Lines != 4 || st.Bytes != uint64(len("one\noops\ntwo\nagain\n")) || st.Dropped() != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestCaptureCutsLongLinesAndEndsTheLast(t *testing.T) {
	h := newHub(t, Options{MaxLine: 1000})
	ch := startChild(t, "script", "long:2500", "out:short", "long:1000", "raw:no newline")
	c := h.Capture(ch.id("web", 0), ch.stdout, nil)
	ch.wait(t)
	waitDone(t, c)
	lines := texts(h.Lines(Query{}))
	long := strings.Repeat("abcdefghijklmnopqrstuvwxyz", 100)
	want := []string{long[:1000], long[1000:2000], long[2000:2500], "short", long[:1000], "no newline"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("lines %d: %.80q, want %d", len(lines), lines, len(want))
	}
	if st := c.Stats(); st.Split != 2 || st.Lines != 6 {
		t.Errorf("stats %+v, want 2 cuts and 6 lines", st)
	}
}

func TestCaptureFramesLinesAcrossReads(t *testing.T) {
	// A fake capture fed read by read: framing is logic.
	h := newHub(t, Options{MaxLine: 8})
	c := h.Capture(Identity{Service: "x"}, nil, nil)
	buf := make([]byte, 8+minReadSize)
	have := 0
	feed := func(s string) {
		have += copy(buf[have:], s)
		have = c.frame(buf, have, Stdout, false)
	}
	feed("ab")
	feed("c\nde")
	feed("f\n\n12345678") // exactly 8: may still end with a newline
	feed("\n123456789")   // 9: cut after 8
	feed("0")
	c.frame(buf, have, Stdout, true)
	got := strings.Join(texts(h.Lines(Query{})), "|")
	if want := "abc|def||12345678|12345678|90"; got != want {
		t.Errorf("lines %q, want %q", got, want)
	}
}

// TestCaptureNeverBlocksTheChild: the console is stuck (a writer that
// never returns) and the files' queue is tiny; the child writes 200,000
// lines and exits all the same; every line is read, the ring keeps the
// last ones, and what the console and the file could not take is counted.
func TestCaptureNeverBlocksTheChild(t *testing.T) {
	stuck := newStuckWriter()
	defer close(stuck.release)
	dir := t.TempDir()
	set := Settings{Console: true, Format: FormatText, Dir: dir, MaxSize: 1 << 30, RingLines: 1000}
	h := New(Options{Settings: set, Console: stuck, SinkQueue: 64 << 10})
	ch := startChild(t, "flood", "200000", "100")
	c := h.Capture(ch.id("flood", 0), ch.stdout, ch.stderr)
	done := make(chan error, 1)
	go func() { done <- ch.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("child: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the child is still writing after 60s: it was blocked")
	}
	waitDone(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := h.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close with the console stuck: %v, want the deadline", err)
	}
	st := c.Stats()
	if st.Lines != 200000 {
		t.Fatalf("read %d lines, want 200000", st.Lines)
	}
	// The console took nothing: it was stuck from the first line. Every
	// line is counted as dropped: because its queue was full, or because
	// Close gave up on it.
	if st.DroppedConsole != 200000 {
		t.Errorf("console dropped %d lines, want all 200000", st.DroppedConsole)
	}
	// The file was not held up by the console: what it lost, it counted.
	data, err := os.ReadFile(filepath.Join(dir, "flood.0.stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := uint64(bytes.Count(data, []byte{'\n'})); n+st.DroppedFile != 200000 || n == 0 {
		t.Errorf("the file has %d lines and dropped %d, want 200000 in all", n, st.DroppedFile)
	}
	last := h.Lines(Query{N: 3})
	if got := strings.Join(texts(last), "|"); !strings.HasPrefix(got, "199997 x") || !strings.Contains(got, "|199999 x") {
		t.Errorf("last lines %.60q", got)
	}
	if n := len(h.Lines(Query{})); n != 1000 {
		t.Errorf("ring holds %d lines, want 1000", n)
	}
	_ = stuck.out.String()
}

// TestCaptureWaitIsBounded: a grandchild holds the pipe open after the
// child has exited; Wait gives up at its deadline, keeping what was read.
func TestCaptureWaitIsBounded(t *testing.T) {
	h := newHub(t, Options{})
	ch := startChild(t, "grandchild")
	c := h.Capture(ch.id("gc", 0), ch.stdout, ch.stderr)
	ch.wait(t)
	var grandchild int
	deadline := time.Now().Add(20 * time.Second)
	for grandchild == 0 && time.Now().Before(deadline) {
		for _, l := range h.Lines(Query{}) {
			grandchild, _ = strconv.Atoi(strings.TrimPrefix(string(l.Text), "started "))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if grandchild == 0 {
		t.Fatal("no line from the child")
	}
	defer func() {
		syscall.Kill(grandchild, syscall.SIGKILL)
		// sleep is the child's child, reparented: init or a subreaper reaps it.
	}()
	select {
	case <-c.Done():
		t.Fatal("the capture ended while the grandchild holds the pipe")
	case <-time.After(100 * time.Millisecond):
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v, want the deadline", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Wait took %v with a 200ms deadline", d)
	}
	select {
	case <-c.Done():
	default:
		t.Error("the capture has not ended after Wait")
	}
	if n := len(h.Lines(Query{})); n != 1 {
		t.Errorf("%d lines kept, want 1", n)
	}
}

// TestConsoleFormats: the text console prefixes each line with its
// instance; the JSON console writes one object per line.
func TestConsoleFormats(t *testing.T) {
	var text, js testutil.Buffer
	ht := newHub(t, Options{Settings: Settings{Console: true}, Console: &text})
	hj := newHub(t, Options{Settings: Settings{Console: true, Format: FormatJSON}, Console: &js})
	for _, h := range []*Hub{ht, hj} {
		ch := startChild(t, "script", "out:hello", `err:say "hi"\`, "raw:\x01\xff")
		c := h.Capture(ch.id("web", 2), ch.stdout, ch.stderr)
		ch.wait(t)
		waitDone(t, c)
		closeHub(t, h, 10*time.Second)
	}
	lines := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
	want := map[string]bool{"web.2 | hello": true, `web.2 | say "hi"\`: true, "web.2 | \x01\xff": true}
	for _, l := range lines {
		if !want[l] {
			t.Errorf("text console line %q", l)
		}
		delete(want, l)
	}
	if len(want) > 0 {
		t.Errorf("text console lacks %v", want)
	}
	checkJSONLines(t, js.String(), map[string]string{"hello": "stdout", `say "hi"\`: "stderr", "\x01\ufffd": "stdout"}, "web", 2)
}

// TestCaptureManyAtOnce: twenty children write at once, each through the
// hub's one poller (and, the second time, each stream by a goroutine of
// its own, as where there is no poller); every line lands in its own
// instance's ring, in order.
func TestCaptureManyAtOnce(t *testing.T) {
	for _, noPoll := range []bool{false, true} {
		t.Run(fmt.Sprintf("noPoll=%v", noPoll), func(t *testing.T) {
			h := newHub(t, Options{noPoll: noPoll})
			var caps []*Capture
			for i := range 20 {
				ch := startChild(t, "flood", "500", "50")
				caps = append(caps, h.Capture(ch.id("many", i), ch.stdout, ch.stderr))
			}
			for _, c := range caps {
				waitDone(t, c)
			}
			for i := range 20 {
				lines := texts(h.Lines(Query{Service: "many", Instance: &i}))
				if len(lines) != 500 {
					t.Fatalf("many.%d: %d lines", i, len(lines))
				}
				for n, l := range lines {
					if !strings.HasPrefix(l, strconv.Itoa(n)+" x") || len(l) != 49 {
						t.Fatalf("many.%d line %d: %q", i, n, l)
					}
				}
			}
		})
	}
}

func TestCaptureWithoutPoller(t *testing.T) {
	h := newHub(t, Options{noPoll: true})
	ch := startChild(t, "script", "out:one", "err:two", "raw:three")
	c := h.Capture(ch.id("web", 0), ch.stdout, ch.stderr)
	ch.wait(t)
	waitDone(t, c)
	if got := strings.Join(texts(h.Lines(Query{Stream: Stdout})), ","); got != "one,three" {
		t.Errorf("stdout %q", got)
	}
	// Close on a pipe held open: the goroutine's read ends.
	gc := startChild(t, "grandchild")
	c = h.Capture(gc.id("gc", 0), gc.stdout, gc.stderr)
	gc.wait(t)
	deadline := time.Now().Add(20 * time.Second)
	for len(h.Lines(Query{Service: "gc"})) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	line := h.Lines(Query{Service: "gc"})
	if len(line) != 1 {
		t.Fatalf("grandchild's line: %q", texts(line))
	}
	pid, _ := strconv.Atoi(strings.TrimPrefix(string(line[0].Text), "started "))
	defer syscall.Kill(pid, syscall.SIGKILL)
	c.Close()
}

// TestFrameCountAgreesWithALineByLineCount: lines are counted a block at a
// time; a line longer than the longest kept whole is found wherever it
// falls across the blocks.
func TestFrameCountAgreesWithALineByLineCount(t *testing.T) {
	slow := func(data []byte, max int) (int, bool) {
		n := 0
		for _, l := range strings.SplitAfter(string(data), "\n") {
			if l == "" {
				continue
			}
			if len(l)-1 > max {
				return 0, true
			}
			n++
		}
		return n, false
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, max := range []int{1, 2, 7, 8, 64, 1000} {
		for range 2000 {
			var b strings.Builder
			for range rnd.IntN(40) {
				b.WriteString(strings.Repeat("x", rnd.IntN(max+max/4+2)))
				b.WriteByte('\n')
			}
			data := []byte(b.String())
			n, long := frameCount(data, max)
			wn, wlong := slow(data, max)
			if long != wlong || !long && n != wn {
				t.Fatalf("max %d, %q: %d lines, long %v; want %d, %v", max, data, n, long, wn, wlong)
			}
		}
	}
}

// TestCaptureLinesAcrossChunks: the poller reads into chunks that its
// batches share; a line written in pieces, longer than a chunk, and the
// lines around it come whole and unchanged.
func TestCaptureLinesAcrossChunks(t *testing.T) {
	h := newHub(t, Options{MaxLine: 100 << 10})
	piece := strings.Repeat("0123456789", 100)
	args := []string{"out:before"}
	for range 50 {
		args = append(args, "raw:"+piece, "sleep:1ms")
	}
	args = append(args, "out:", "out:after")
	for i := range 300 {
		args = append(args, fmt.Sprintf("out:%03d %s", i, strings.Repeat("y", 200)))
	}
	ch := startChild(t, "script", args...)
	c := h.Capture(ch.id("chunks", 0), ch.stdout, nil)
	ch.wait(t)
	waitDone(t, c)
	lines := texts(h.Lines(Query{}))
	if len(lines) != 303 {
		t.Fatalf("%d lines, want 303", len(lines))
	}
	if lines[0] != "before" || lines[1] != strings.Repeat(piece, 50) || lines[2] != "after" {
		t.Errorf("lines %.40q, %d bytes, %.40q", lines[0], len(lines[1]), lines[2])
	}
	for i, l := range lines[3:] {
		if want := fmt.Sprintf("%03d %s", i, strings.Repeat("y", 200)); l != want {
			t.Fatalf("line %d: %.40q", i+3, l)
		}
	}
}

// TestReadPaceBounds: the wait after a read never lets the pipe fill at
// rateMargin times the pace the read saw, unless the pipe takes longer
// than that to fill at burstRate; it at most doubles from one read to the
// next, and is never longer than the bound.
func TestReadPaceBounds(t *testing.T) {
	h := New(Options{})
	p := h.pace(pipeSize)
	if p.burst != 5*time.Millisecond || p.max != maxReadDelay {
		t.Fatalf("pace %+v", p)
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		got := 1 + rnd.IntN(gatherBytes+1000)
		elapsed := time.Duration(1 + rnd.Int64N(int64(time.Second)))
		prev := time.Duration(rnd.Int64N(int64(2 * maxReadDelay)))
		d := p.next(got, elapsed, prev)
		rate := float64(got) / elapsed.Seconds()
		fill := time.Duration(float64(pipeSize) / (rateMargin * rate) * float64(time.Second))
		switch {
		case d > p.max:
			t.Fatalf("got %d in %v: wait %v, longer than %v", got, elapsed, d, p.max)
		case d > max(2*prev, p.burst):
			t.Fatalf("got %d in %v: wait %v after %v", got, elapsed, d, prev)
		case d > max(fill, p.burst)+time.Microsecond:
			t.Fatalf("got %d in %v: wait %v, the pipe fills at %d times that pace in %v", got, elapsed, d, rateMargin, fill)
		case got >= gatherBytes && d != 0:
			t.Fatalf("got %d: wait %v", got, d)
		}
	}
	// A steady 100 KB/s is read every maxReadDelay.
	d := time.Duration(0)
	for range 20 {
		d = p.next(10<<10, 100*time.Millisecond, d)
	}
	if d != maxReadDelay {
		t.Errorf("a steady 100 KB/s waits %v", d)
	}
	if d := (readPace{}).next(10, time.Second, time.Second); d != 0 {
		t.Errorf("the zero pace waits %v", d)
	}
	if p := New(Options{ReadDelay: -1}).pace(pipeSize); p != (readPace{}) {
		t.Errorf("ReadDelay -1: pace %+v", p)
	}
}

// TestReadPaceSteadyWithSwings: a child writing about 100 KB/s, a read
// bringing a little more or less each time, is read every maxReadDelay,
// the wait pipes at that pace share (at a margin of 100 it swung below).
func TestReadPaceSteadyWithSwings(t *testing.T) {
	p := New(Options{}).pace(pipeSize)
	d := time.Duration(0)
	for i := range 40 {
		got := (10 << 10) + (i%5-2)*(1<<10) // 8 to 12 KiB a read
		d = p.next(got, 100*time.Millisecond, d)
		if i >= 10 && d != maxReadDelay {
			t.Fatalf("read %d brought %d bytes in 100ms: wait %v, want %v", i, got, d, maxReadDelay)
		}
	}
}

// TestGridWake: a read comes due no later than its wait allows and not
// before now; pipes whose waits fall in the same band come due together.
func TestGridWake(t *testing.T) {
	epoch := time.Now()
	rnd := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		now := epoch.Add(time.Duration(rnd.Int64N(int64(time.Hour))))
		d := time.Duration(rnd.Int64N(int64(2 * maxReadDelay)))
		at := gridWake(epoch, now, d)
		if at.After(now.Add(d)) || at.Before(now) {
			t.Fatalf("now %v, wait %v: due at %v", now.Sub(epoch), d, at.Sub(epoch))
		}
		if d >= maxReadDelay && at.Sub(epoch)%maxReadDelay != 0 {
			t.Fatalf("wait %v: due at %v, off the %v grid", d, at.Sub(epoch), maxReadDelay)
		}
	}
	// Two pipes read 30 ms apart, each to wait 100 ms (or 70 and
	// 100 ms, on the 50 ms grid), come due at the same moment.
	now := epoch.Add(1234 * time.Millisecond)
	for _, w := range [][2]time.Duration{{100 * time.Millisecond, 100 * time.Millisecond}, {70 * time.Millisecond, 60 * time.Millisecond}} {
		a := gridWake(epoch, now, w[0])
		b := gridWake(epoch, now.Add(30*time.Millisecond), w[1])
		if !a.Equal(b) {
			t.Errorf("waits %v: due at %v and %v", w, a.Sub(epoch), b.Sub(epoch))
		}
	}
	// A wait shorter than any spacing is kept as it is.
	if at := gridWake(epoch, now, 20*time.Microsecond); !at.Equal(now.Add(20 * time.Microsecond)) {
		t.Errorf("a 20µs wait: due at %v", at.Sub(now))
	}
}

// bareFD takes f's descriptor out of f (a duplicate, blocking as a
// spawner's pipe end is, and f closed).
func bareFD(t *testing.T, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if cerr := rc.Control(func(orig uintptr) { fd, err = syscall.Dup(int(orig)) }); cerr != nil || err != nil {
		t.Fatal(cerr, err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return fd
}

// fdOpen says whether fd is open in this process.
func fdOpen(fd int) bool {
	_, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	return err == nil
}

// CaptureFDs reads bare descriptors as Capture reads files, by the poller
// or by goroutines, and closes them at the end.
func TestCaptureFDs(t *testing.T) {
	for _, noPoll := range []bool{false, true} {
		t.Run(fmt.Sprintf("noPoll=%v", noPoll), func(t *testing.T) {
			h := newHub(t, Options{noPoll: noPoll})
			ch := startChild(t, "script", "out:one", "err:oops", "out:two")
			out, errFD := bareFD(t, ch.stdout), bareFD(t, ch.stderr)
			c := h.CaptureFDs(ch.id("web", 0), out, errFD)
			ch.wait(t)
			waitDone(t, c)
			if got := strings.Join(texts(h.Lines(Query{Stream: Stdout})), ","); got != "one,two" {
				t.Errorf("stdout: %q", got)
			}
			if got := strings.Join(texts(h.Lines(Query{Stream: Stderr})), ","); got != "oops" {
				t.Errorf("stderr: %q", got)
			}
			if fdOpen(out) || fdOpen(errFD) {
				// (Another test's descriptor may reuse the number: none runs
				// beside this one.)
				t.Errorf("descriptors %d and %d: still open after the capture's end", out, errFD)
			}
		})
	}
	// One stream only.
	h := newHub(t, Options{})
	ch := startChild(t, "script", "out:alone")
	ch.stderr.Close()
	c := h.CaptureFDs(ch.id("web", 1), bareFD(t, ch.stdout), -1)
	ch.wait(t)
	waitDone(t, c)
	if got := strings.Join(texts(h.Lines(Query{})), ","); got != "alone" {
		t.Errorf("lines: %q", got)
	}
}
