package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigild/vigil/logs"
	"github.com/vigild/vigil/rpc"
)

// The test binary re-executes itself as a child that writes lines: with
// CONTROL_TEST_LINES=COUNT[,INTERVAL[,FROM]] it writes "line N" to stdout
// for N from FROM, one every INTERVAL, then "done" to stderr.
func TestMain(m *testing.M) {
	if spec := os.Getenv("CONTROL_TEST_LINES"); spec != "" {
		parts := strings.Split(spec, ",")
		count, _ := strconv.Atoi(parts[0])
		var interval time.Duration
		from := 0
		if len(parts) > 1 {
			interval, _ = time.ParseDuration(parts[1])
		}
		if len(parts) > 2 {
			from, _ = strconv.Atoi(parts[2])
		}
		for i := range count {
			fmt.Printf("line %d\n", from+i)
			time.Sleep(interval)
		}
		fmt.Fprintln(os.Stderr, "done")
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// quiet keeps lines in the rings only.
var quiet = logs.Settings{RingLines: 1000}

// capture runs a child writing lines as instance n of service, captured
// by hub, and returns once the child has exited and its capture ended.
func capture(t *testing.T, hub *logs.Hub, service string, n int, spec string) {
	t.Helper()
	c := start(t, hub, service, n, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// start starts the child and its capture; the test's end waits for both.
func start(t *testing.T, hub *logs.Hub, service string, n int, spec string) *logs.Capture {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CONTROL_TEST_LINES="+spec)
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	errW.Close()
	c := hub.Capture(logs.Identity{Service: service, Instance: n, PID: cmd.Process.Pid}, outR, errR)
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		c.Close()
	})
	return c
}

// serve serves the logs operation of hub on a real Unix socket and returns
// a connection to it.
func serve(t *testing.T, hub *logs.Hub) *rpc.Conn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.ipc")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	wg.Go(func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		rpc.NewConn(conn, rpc.Options{Accepted: true, Handlers: rpc.Handlers{"logs": Logs(hub)}}).Run(ctx)
	})
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	client := rpc.NewConn(conn, rpc.Options{})
	wg.Go(func() { client.Run(ctx) })
	t.Cleanup(func() {
		client.Close()
		cancel()
		ln.Close()
		wg.Wait()
	})
	return client
}

// result is what a logs call brought.
type result struct {
	lines   []LogLine
	replies int
	lost    uint64
	cursor  uint64
}

func (r *result) texts() string {
	s := make([]string, len(r.lines))
	for i, l := range r.lines {
		s[i] = l.Line
	}
	return strings.Join(s, "|")
}

func call(t *testing.T, c *rpc.Conn, params map[string]any) (*result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := &result{}
	final, err := c.Call(ctx, "logs", params, func(m *rpc.Message) error {
		r.replies++
		var p struct {
			Lines []LogLine `json:"lines"`
			Lost  uint64    `json:"lost"`
		}
		if err := m.Decode(&p); err != nil {
			return err
		}
		if len(p.Lines) > LogsBatch {
			t.Errorf("a reply of %d lines", len(p.Lines))
		}
		r.lines = append(r.lines, p.Lines...)
		r.lost += p.Lost
		return nil
	})
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(final.Bytes(), &struct {
		Cursor *uint64 `json:"cursor"`
	}{&r.cursor}); err != nil {
		t.Fatal(err)
	}
	return r, nil
}

func TestLogsKeptLines(t *testing.T) {
	hub := logs.New(logs.Options{Settings: quiet})
	defer hub.Close(context.Background())
	capture(t, hub, "web", 0, "1200")
	capture(t, hub, "job", 2, "3")
	c := serve(t, hub)

	r, err := call(t, c, map[string]any{"service": "web"})
	if err != nil {
		t.Fatal(err)
	}
	// The ring keeps the last 1,000 of stdout, and stderr's one line (the
	// two pipes are read apart: their order between them is the reads').
	if len(r.lines) != 1001 || r.replies != 3 || r.cursor == 0 {
		t.Fatalf("%d lines in %d replies, cursor %d", len(r.lines), r.replies, r.cursor)
	}
	next := 200
	for _, l := range r.lines {
		if l.Service != "web" || l.Instance != 0 || l.PID <= 0 || time.Since(l.Time) > time.Minute {
			t.Errorf("line %+v", l)
		}
		if l.Stream == "stderr" {
			if l.Line != "done" {
				t.Errorf("stderr line %+v", l)
			}
			continue
		}
		if want := fmt.Sprintf("line %d", next); l.Line != want || l.Stream != "stdout" {
			t.Fatalf("line %+v, want %q on stdout", l, want)
		}
		next++
	}
	for _, tc := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"n": 3, "stream": "stdout"}, "line 0|line 1|line 2"}, // job's lines came last
		{map[string]any{"service": "job", "instance": 2, "stream": "stderr"}, "done"},
		{map[string]any{"service": "job", "instance": 1}, ""},
		{map[string]any{"service": "nope"}, ""},
		{map[string]any{"service": "web", "previous": true}, ""},
		{map[string]any{"since": time.Now().Add(time.Minute).Format(time.RFC3339)}, ""},
		{map[string]any{"service": "job", "n": 2, "stream": "stdout", "since": time.Now().Add(-time.Minute).Format(time.RFC3339Nano)}, "line 1|line 2"},
		{map[string]any{"after": r.cursor}, ""},
	} {
		got, err := call(t, c, tc.params)
		if err != nil {
			t.Errorf("%v: %v", tc.params, err)
			continue
		}
		if got.texts() != tc.want {
			t.Errorf("%v: %q, want %q", tc.params, got.texts(), tc.want)
		}
	}
}

func TestLogsAfterACursor(t *testing.T) {
	hub := logs.New(logs.Options{Settings: quiet})
	defer hub.Close(context.Background())
	capture(t, hub, "web", 0, "3")
	c := serve(t, hub)
	r, err := call(t, c, map[string]any{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	capture(t, hub, "job", 0, "2,0,7")
	r2, err := call(t, c, map[string]any{"after": r.cursor, "stream": "stdout"})
	if err != nil {
		t.Fatal(err)
	}
	if r2.texts() != "line 7|line 8" || r2.cursor <= r.cursor {
		t.Errorf("after cursor %d: %q, cursor %d", r.cursor, r2.texts(), r2.cursor)
	}
}

func TestLogsBadParameters(t *testing.T) {
	hub := logs.New(logs.Options{Settings: quiet})
	defer hub.Close(context.Background())
	c := serve(t, hub)
	for _, tc := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"stream": "both"}, `'stream': stream "both": want stdout or stderr`},
		{map[string]any{"service": "web", "instance": -1}, "'instance' must be 0 or more, not -1"},
		{map[string]any{"instance": 1}, "'instance' needs 'service'"},
		{map[string]any{"n": -2}, "'n' must be 0 or more, not -2"},
		{map[string]any{"n": "ten"}, "logsParams.n"},
		{map[string]any{"since": "5m"}, "'since' must be an RFC 3339 time"},
		{map[string]any{"previous": true, "follow": true}, "nothing to follow"},
		{map[string]any{"follow": true, "follow_for": 0}, "'follow_for' must be a positive number of seconds"},
	} {
		_, err := call(t, c, tc.params)
		var remote *rpc.RemoteError
		if !errors.As(err, &remote) || remote.Class != "ArgumentError" || !strings.Contains(remote.Message, tc.want) {
			t.Errorf("%v: %v, want an ArgumentError saying %q", tc.params, err, tc.want)
		}
	}
}

// TestLogsFollowAcrossCallsAndRestarts follows a child writing a line
// every 5 ms in calls of 300 ms, resuming each from the last cursor, while
// the instance is restarted: every line comes once, in order.
func TestLogsFollowAcrossCallsAndRestarts(t *testing.T) {
	hub := logs.New(logs.Options{Settings: quiet})
	defer hub.Close(context.Background())
	c := serve(t, hub)
	first := start(t, hub, "web", 0, "200,5ms,0")
	var got []string
	var cursor uint64
	restarted := false
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		params := map[string]any{"service": "web", "follow": true, "follow_for": 0.3, "stream": "stdout"}
		if cursor > 0 {
			params["after"] = cursor
		}
		r, err := call(t, c, params)
		if err != nil {
			t.Fatal(err)
		}
		if r.lost > 0 {
			t.Fatalf("lost %d lines", r.lost)
		}
		if r.cursor < cursor {
			t.Fatalf("cursor went back from %d to %d", cursor, r.cursor)
		}
		cursor = r.cursor
		for _, l := range r.lines {
			got = append(got, l.Line)
		}
		if !restarted && len(got) >= 50 {
			// The restart: the old process goes on a little (it is
			// stopping), the new one starts from 1000.
			restarted = true
			start(t, hub, "web", 0, "100,5ms,1000")
		}
		if len(got) >= 300 {
			break
		}
	}
	_ = first
	var want []string
	seen := make(map[string]bool)
	for _, l := range got {
		if seen[l] {
			t.Fatalf("%q twice", l)
		}
		seen[l] = true
	}
	for i := range 200 {
		want = append(want, fmt.Sprintf("line %d", i))
	}
	for i := range 100 {
		want = append(want, fmt.Sprintf("line %d", 1000+i))
	}
	for _, w := range want {
		if !seen[w] {
			t.Fatalf("%q never came (got %d lines)", w, len(got))
		}
	}
	// Each process's lines in order.
	last := map[bool]int{false: -1, true: -1}
	for _, l := range got {
		n, _ := strconv.Atoi(strings.TrimPrefix(l, "line "))
		if n <= last[n >= 1000] {
			t.Fatalf("%q after line %d", l, last[n >= 1000])
		}
		last[n >= 1000] = n
	}
}

func TestLogsFollowEndsWhenTheConnectionCloses(t *testing.T) {
	hub := logs.New(logs.Options{Settings: quiet})
	defer hub.Close(context.Background())
	c := serve(t, hub)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "logs", map[string]any{"follow": true}, nil)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	c.Close() // the server's handler sees its connection end; goleak checks it returned
	cancel()
	if err := <-done; err == nil {
		t.Error("the call succeeded after its connection closed")
	}
}
