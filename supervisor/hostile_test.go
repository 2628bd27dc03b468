package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigild/vigil/rpc"
)

// Defect 2: one registration could blind every operator, by a state nested
// past Go's JSON depth limit once the status reply wraps it, or by states
// whose sum outgrows the operator's line limit.
func TestStateLimits(t *testing.T) {
	ts := startServer(t, &Server{}, ListenOptions{})
	ctx := ctxT(t)

	deep := strings.Repeat(`{"a":`, 9996) + "1" + strings.Repeat("}", 9996)
	raw := dialRaw(t, ts.path)
	raw.send(`{"id":2,"do":"register","state":` + deep + "}\n")
	m := raw.recv(20 * time.Second)
	if m["failed"] != true || !strings.Contains(fmt.Sprint(m["error"]), "supervisor.max_state_depth") {
		t.Errorf("a state nested 9,997 deep: %v", m)
	}
	for range 2 {
		big := dialRaw(t, ts.path)
		big.send(`{"id":2,"do":"register","state":{"process_id":1,"pad":"` + strings.Repeat("x", 5<<20) + `"}}` + "\n")
		m := big.recv(20 * time.Second)
		if m["failed"] != true || !strings.Contains(fmt.Sprint(m["error"]), "supervisor.max_state_size") {
			t.Errorf("a 5 MiB state: %.200v", m)
		}
	}
	// Merging registrations on one connection cannot pass the limit either.
	for i := range 3 {
		raw.send(fmt.Sprintf(`{"id":%d,"do":"register","state":{"pad%d":"%s"}}`+"\n", 10+2*i, i, strings.Repeat("y", 30<<10)))
		m := raw.recv(20 * time.Second)
		if (m["failed"] == true) != (i == 2) {
			t.Errorf("merged registration %d: %.200v", i, m)
		}
	}
	st, err := dial(t, ts.path, nil).Status(ctx)
	if err != nil {
		t.Fatalf("status after the refused registrations: %v", err)
	}
	if len(st.Connections) != 1 {
		t.Errorf("%d registrations, want the one within the limits", len(st.Connections))
	}
}

// Many registrations, each within the limits but together over a line: the
// status reply sends the largest brief, and every operator can read it.
func TestStatusAlwaysFits(t *testing.T) {
	ts := startServer(t, &Server{}, ListenOptions{})
	const n = 140
	pad := strings.Repeat("z", 60<<10)
	for i := range n {
		raw := dialRaw(t, ts.path)
		raw.send(fmt.Sprintf(`{"id":2,"do":"register","state":{"process_id":%d,"name":"big","instance":%d,"pad":"%s"}}`+"\n", 1000+i, i, pad))
		if m := raw.recv(20 * time.Second); m["finished"] != true || m["failed"] == true {
			t.Fatalf("registration %d: %.200v", i, m)
		}
	}
	st, err := dial(t, ts.path, nil).Status(ctxT(t))
	if err != nil {
		t.Fatalf("status with %d registrations of 60 KiB: %v", n, err)
	}
	if len(st.Connections) != n {
		t.Fatalf("%d connections, want %d", len(st.Connections), n)
	}
	brief := 0
	for _, c := range st.Connections {
		s, err := c.StateMap()
		if err != nil {
			t.Fatal(err)
		}
		if s["elided"] == true {
			brief++
			if s["name"] != "big" || s["process_id"] == nil || s["pad"] != nil || c.ProcessID < 1000 {
				t.Errorf("brief entry: %v", s)
			}
		}
	}
	if brief == 0 || brief == n {
		t.Errorf("%d of %d entries brief, want some", brief, n)
	}
	if len(st.Final.Bytes()) > rpc.DefaultMaxLineSize {
		t.Errorf("status reply of %d bytes", len(st.Final.Bytes()))
	}
}

// Defect 3: 50,000 status calls on one connection, never read, made a
// goroutine each and grew the supervisor's memory without bound.
func TestUnreadCallsAreBounded(t *testing.T) {
	ts := startServer(t, &Server{}, ListenOptions{})
	dial(t, ts.path, nil) // a first connection: its goroutines are the base
	runtime.GC()
	base := runtime.NumGoroutine()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	c, err := net.Dial("unix", ts.path)
	if err != nil {
		t.Fatal(err)
	}
	flood := []byte(strings.Repeat(`{"id":2,"do":"status"}`+"\n", 50000))
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Write(flood) // blocks once the supervisor stops reading
	}()
	peak := 0
	for range 40 {
		time.Sleep(50 * time.Millisecond)
		peak = max(peak, runtime.NumGoroutine()-base)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	c.Close()
	<-done
	// Its reader, the goroutine blocked writing to it, and, for a moment,
	// the handlers of the calls in flight.
	if limit := DefaultMaxInFlight + 4; peak > limit {
		t.Errorf("%d goroutines for one connection that does not read, want at most %d", peak, limit)
	}
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 8<<20 {
		t.Errorf("the heap grew by %d MiB for one connection that does not read", grown>>20)
	}
}

// Defect 3: a connection holding an unterminated line was kept forever.
func TestPartialLineCloses(t *testing.T) {
	ts := startServer(t, &Server{Limits: Limits{LineTimeout: 300 * time.Millisecond}}, ListenOptions{})
	idle := dialRaw(t, ts.path)
	raw := dialRaw(t, ts.path)
	// (Under load the supervisor may close it before the write ends.)
	raw.conn.Write([]byte(`{"id":2,"do":"status","pad":"` + strings.Repeat("p", 1<<20)))
	if m := raw.recv(20 * time.Second); m != nil {
		t.Fatalf("got %v, want the connection closed", m)
	}
	// An idle connection stays.
	idle.send(`{"id":2,"do":"status"}` + "\n")
	if m := idle.recv(20 * time.Second); m == nil || m["finished"] != true {
		t.Fatalf("idle connection: %v", m)
	}
	if !strings.Contains(ts.logs.String(), "not completed within") {
		t.Errorf("the closing is not logged:\n%s", ts.logs)
	}
}

// Defect 3: every connection was accepted, 5,000 and more.
func TestConnectionLimit(t *testing.T) {
	ts := startServer(t, &Server{Limits: Limits{MaxConnections: 5}}, ListenOptions{})
	var held []*rawClient
	for range 5 {
		c := dialRaw(t, ts.path)
		c.send(`{"id":2,"do":"status"}` + "\n")
		if m := c.recv(20 * time.Second); m == nil {
			t.Fatal("a connection within the limit was closed")
		}
		held = append(held, c)
	}
	for range 20 {
		c := dialRaw(t, ts.path)
		c.conn.Write([]byte(`{"id":2,"do":"status"}` + "\n")) // fails once the connection is closed
		if m := c.recv(20 * time.Second); m != nil {
			t.Fatalf("a connection over the limit was served: %v", m)
		}
	}
	if n := strings.Count(ts.logs.String(), "connection limit reached"); n != 1 {
		t.Errorf("the limit logged %d times, want once:\n%s", n, ts.logs)
	}
	held[0].conn.Close()
	waitFor(t, "a connection to be served again", func() bool {
		c := dialRaw(t, ts.path)
		c.conn.Write([]byte(`{"id":2,"do":"status"}` + "\n"))
		return c.recv(20*time.Second) != nil
	})
	waitFor(t, "the end of the limit logged", func() bool { return strings.Contains(ts.logs.String(), "accepting connections again") })
	if m := regexp.MustCompile(`accepting connections again.* refused=(\d+)`).FindStringSubmatch(ts.logs.String()); m == nil || len(m[1]) < 2 {
		t.Errorf("the end of the limit is not logged with the count refused (20 or more):\n%s", ts.logs)
	}
}

// Defect 4: a client that sends its calls and then shuts down its sending
// side got its replies only sometimes.
func TestHalfCloseGetsReplies(t *testing.T) {
	ts := startServer(t, &Server{}, ListenOptions{})
	for i := range 20 {
		for _, call := range []string{`{"id":2,"do":"status"}`, `{"id":2,"do":"register","state":{"name":"half"}}`} {
			raw := dialRaw(t, ts.path)
			raw.send(call + "\n")
			if err := raw.conn.(*net.UnixConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			m := raw.recv(20 * time.Second)
			if m == nil || m["finished"] != true || m["failed"] == true {
				t.Fatalf("try %d, %s then a half-close: %v", i, call, m)
			}
			if m := raw.recv(20 * time.Second); m != nil {
				t.Fatalf("after the reply: %v, want the end", m)
			}
		}
	}
}

// Defect 6: a malformed line's start, and a message without an id, reached
// the log at WARN.
func TestNoClientDataInLogs(t *testing.T) {
	for _, debug := range []bool{false, true} {
		logs := &syncBuffer{}
		level := slog.LevelInfo
		if debug {
			level = slog.LevelDebug
		}
		srv := &Server{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))}
		ts := startServer(t, srv, ListenOptions{})
		raw := dialRaw(t, ts.path)
		raw.send(`{"password":"s3cret-malformed` + "\n")
		raw.send(`{"do":"status","token":"s3cret-no-id"}` + "\n")
		raw.send(`{"id":2,"do":"register","state":{"name":"s3cret name with spaces"}}` + "\n")
		raw.recv(20 * time.Second)
		raw.send(`{"id":4,"do":"forward","connection_id":"x","operation":{"do":"s3cret op"}}` + "\n")
		raw.recv(20 * time.Second)
		raw.send(`{"id":6,"do":"s3cret-operation"}` + "\n")
		raw.recv(20 * time.Second)
		out := logs.String()
		if !strings.Contains(out, "ignoring bad message") || !strings.Contains(out, "ignoring message without id") {
			t.Errorf("debug=%v: bad input not logged:\n%s", debug, out)
		}
		if got := strings.Contains(out, "s3cret"); got != debug {
			t.Errorf("debug=%v: client data in the log: %v\n%s", debug, got, out)
		}
	}
}

// A status caller that gives its timeout hears within it which party did
// not answer: here the controller.
func TestStatusNamesTheControllerThatDoesNotAnswer(t *testing.T) {
	ts := startServer(t, &Server{ParentPID: os.Getpid()}, ListenOptions{})
	stuck := rpc.Handlers{"children": func(ctx context.Context, call *rpc.Call) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	ctrl := dial(t, ts.path, stuck)
	if _, err := ctrl.Register(ctxT(t), map[string]any{"role": "controller", "process_id": os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := dial(t, ts.path, nil).Status(ctx)
	if err != nil {
		t.Fatalf("status with a stuck controller: %v, want an answer naming it", err)
	}
	msg := string(st.Part("error"))
	if !strings.Contains(msg, fmt.Sprintf("the controller (pid %d) did not answer within", os.Getpid())) {
		t.Errorf("controller part: %s", msg)
	}
	if len(st.Connections) != 1 {
		t.Errorf("connections: %+v", st.Connections)
	}
	raw := dialRaw(t, ts.path)
	raw.send(`{"id":2,"do":"status","timeout":"soon"}` + "\n")
	if m := raw.recv(20 * time.Second); m["failed"] != true || !strings.Contains(fmt.Sprint(m["error"]), "'timeout'") {
		t.Errorf("a bad timeout: %v", m)
	}
}

// A client sending garbage as fast as it can, or connecting again and
// again, cannot flood the log: each kind of warning it causes is logged at
// most once a second, the next saying how many were left out.
func TestClientWarningsAreThrottled(t *testing.T) {
	logs := &syncBuffer{}
	srv := &Server{Logger: slog.New(slog.NewTextHandler(logs, nil))}
	ts := startServer(t, srv, ListenOptions{})
	raw := dialRaw(t, ts.path)
	raw.send(strings.Repeat("garbage\n", 10000))
	raw.send(`{"id":2,"do":"status"}` + "\n")
	raw.recv(20 * time.Second)
	if n := strings.Count(logs.String(), "ignoring bad message"); n < 1 || n > 3 {
		t.Errorf("10,000 bad lines logged %d times, want 1 to 3:\n%s", n, logs)
	}
	time.Sleep(1100 * time.Millisecond)
	raw.send("garbage\n" + `{"id":4,"do":"status"}` + "\n")
	raw.recv(20 * time.Second)
	if !strings.Contains(logs.String(), "similar_left_out=") {
		t.Errorf("the count of the warnings left out is not logged:\n%s", logs)
	}
}
