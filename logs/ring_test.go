package logs

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeClock is the hub's clock in tests of queries by time.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// feed hands lines to c as one read would.
func feed(c *Capture, s Stream, text string) {
	buf := make([]byte, c.hub.maxLine+readSize)
	n := copy(buf, text)
	c.frame(buf, n, s, true)
}

func TestRingKeepsTheLastLines(t *testing.T) {
	h := newHub(t, Options{Settings: Settings{RingLines: 10}})
	c := h.Capture(Identity{Service: "web", PID: 1}, nil, nil)
	n := 0
	for _, size := range []int{3, 7, 1, 25, 4, 2} { // reads of several lines
		var b strings.Builder
		for range size {
			fmt.Fprintf(&b, "%d\n", n)
			n++
		}
		feed(c, Stdout, b.String())
		lines := texts(h.Lines(Query{}))
		if len(lines) != min(n, 10) || lines[len(lines)-1] != fmt.Sprint(n-1) || lines[0] != fmt.Sprint(max(0, n-10)) {
			t.Fatalf("after %d lines the ring holds %q", n, lines)
		}
	}
	for _, k := range []int{1, 4, 9, 10, 11} {
		lines := texts(h.Lines(Query{N: k}))
		if len(lines) != min(k, 10) || lines[len(lines)-1] != "41" {
			t.Errorf("last %d: %q", k, lines)
		}
	}
	if r := &c.rings[0]; len(r.batches) > 3 {
		t.Errorf("the ring holds %d batches for 10 lines", len(r.batches))
	}
}

func TestQueryMergesByArrivalAndFilters(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
	h := newHub(t, Options{now: clock.now})
	web0 := h.Capture(Identity{Service: "web", Instance: 0, PID: 10}, nil, nil)
	web1 := h.Capture(Identity{Service: "web", Instance: 1, PID: 11}, nil, nil)
	job := h.Capture(Identity{Service: "job", Instance: 0, PID: 20}, nil, nil)
	steps := []struct {
		c    *Capture
		s    Stream
		text string
	}{
		{web0, Stdout, "a\n"}, {web1, Stdout, "b\n"}, {job, Stderr, "c\n"},
		{web0, Stderr, "d\ne\n"}, {web1, Stdout, "f\n"}, {job, Stdout, "g\n"},
	}
	for _, st := range steps {
		clock.t = clock.t.Add(time.Minute)
		feed(st.c, st.s, st.text)
	}
	one := 1
	zero := 0
	for _, tc := range []struct {
		name string
		q    Query
		want string
	}{
		{"all", Query{}, "a b c d e f g"},
		{"service", Query{Service: "web"}, "a b d e f"},
		{"instance", Query{Service: "web", Instance: &one}, "b f"},
		{"instance 0 of every service", Query{Instance: &zero}, "a c d e g"},
		{"stream", Query{Stream: Stderr}, "c d e"},
		{"last n", Query{N: 3}, "e f g"},
		{"last n of a service", Query{Service: "web", N: 2}, "e f"},
		{"since", Query{Since: clock.t.Add(-time.Minute)}, "f g"},
		{"since, a read of two lines", Query{Since: clock.t.Add(-2 * time.Minute)}, "d e f g"},
		{"since and n", Query{Since: clock.t.Add(-2 * time.Minute), N: 3}, "e f g"},
		{"since and n, cutting a read", Query{Since: clock.t.Add(-2 * time.Minute), Service: "web", N: 2}, "e f"},
		{"unknown service", Query{Service: "nope"}, ""},
		{"previous: none yet", Query{Previous: true}, ""},
	} {
		got := strings.Join(texts(h.Lines(tc.q)), " ")
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	c := h.Lines(Query{Service: "job", Stream: Stderr})[0]
	if got := strings.Join(texts(h.Lines(Query{After: c.Seq})), " "); got != "d e f g" {
		t.Errorf("after c: %q", got)
	}
	if got := strings.Join(texts(h.Lines(Query{After: h.Seq()})), " "); got != "" {
		t.Errorf("after the last: %q", got)
	}
	lines := h.Lines(Query{Service: "job"})
	if lines[0].Stream != Stderr || lines[1].Stream != Stdout || lines[0].PID != 20 || !lines[1].Time.Equal(clock.t) {
		t.Errorf("job's lines: %+v", lines)
	}
}

// TestPreviousProcess: a new process of an instance moves the current one
// to previous; the one before that is gone.
func TestPreviousProcess(t *testing.T) {
	h := newHub(t, Options{})
	var pids []int
	for _, word := range []string{"first", "second", "third"} {
		ch := startChild(t, "script", "out:"+word+" says hello", "err:"+word+" crashed")
		c := h.Capture(ch.id("web", 0), ch.stdout, ch.stderr)
		ch.wait(t)
		waitDone(t, c)
		pids = append(pids, ch.cmd.Process.Pid)
	}
	// Two pipes read by two goroutines: the order between the streams is
	// the order of the reads, so each stream is checked on its own.
	cur := h.Lines(Query{Service: "web", Stream: Stdout})
	prev := h.Lines(Query{Service: "web", Previous: true, Stream: Stdout})
	if got := strings.Join(texts(cur), ","); got != "third says hello" {
		t.Errorf("current: %q", got)
	}
	if got := strings.Join(texts(prev), ","); got != "second says hello" {
		t.Errorf("previous: %q", got)
	}
	if n := len(h.Lines(Query{Previous: true})); n != 2 {
		t.Errorf("previous process: %d lines, want 2", n)
	}
	if prev[0].PID != pids[1] || cur[0].PID != pids[2] {
		t.Errorf("pids: previous %d current %d, want %v", prev[0].PID, cur[0].PID, pids[1:])
	}
	last := h.Lines(Query{Previous: true, Stream: Stderr, N: 1})
	if len(last) != 1 || string(last[0].Text) != "second crashed" {
		t.Errorf("previous process's last stderr line: %q", texts(last))
	}
	info := h.Instances()
	if len(info) != 1 || info[0].PID != pids[2] || info[0].PreviousPID != pids[1] {
		t.Errorf("instances %+v", info)
	}
	h.Forget("web", 0)
	if n := len(h.Lines(Query{})); n != 0 || len(h.Instances()) != 0 {
		t.Errorf("after Forget: %d lines", n)
	}
}

// TestRingBoundsBytes: long lines are kept within about ringBytes, the
// newest whole.
func TestRingBoundsBytes(t *testing.T) {
	h := newHub(t, Options{Settings: Settings{RingLines: 1000}})
	c := h.Capture(Identity{Service: "web", PID: 1}, nil, nil)
	line := strings.Repeat("y", 2047)
	for i := range 40 {
		var b strings.Builder
		for j := range 50 {
			fmt.Fprintf(&b, "%04d%s\n", i*50+j, line[4:])
		}
		feed(c, Stdout, b.String())
	}
	lines := texts(h.Lines(Query{}))
	size := len(lines) * 2048
	if size > ringBytes+50*2048 || size < ringBytes-50*2048 || !strings.HasPrefix(lines[len(lines)-1], "1999") {
		t.Errorf("kept %d lines of 2 KiB (%d bytes), the last %.4q", len(lines), size, lines[len(lines)-1])
	}
}
