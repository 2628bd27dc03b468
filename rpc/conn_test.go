package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigild/vigil/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// socketPair returns the two ends of a real Unix stream socket pair.
func socketPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conv := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conv(fds[0]), conv(fds[1])
}

// running starts conn.Run and returns a function that closes the
// connection and waits for Run, returning its error.
func running(t testing.TB, c *Conn) func() error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			c.Close()
			err = <-errc
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// rawPeer is the other end of a connection, driven line by line.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func newRawPeer(t testing.TB, c net.Conn) *rawPeer {
	t.Cleanup(func() { c.Close() })
	return &rawPeer{t: t, conn: c, r: bufio.NewReader(c)}
}

func (p *rawPeer) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.conn, line); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPeer) recv() map[string]any {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := p.r.ReadBytes('\n')
	if err != nil {
		p.t.Fatalf("reading reply: %v (got %q)", err, line)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		p.t.Fatalf("reply %q: %v", line, err)
	}
	return m
}

func (p *rawPeer) expectEOF() {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := p.r.ReadBytes('\n')
	if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		p.t.Fatalf("expected the connection to close, got %q, %v", line, err)
	}
}

func echoHandlers() Handlers {
	return Handlers{
		"echo": func(ctx context.Context, call *Call) error {
			var p struct {
				Value any `json:"value"`
				Steps int `json:"steps"`
			}
			if err := call.Message().Decode(&p); err != nil {
				return err
			}
			for i := range p.Steps {
				if err := call.Reply(map[string]any{"step": i}); err != nil {
					return err
				}
			}
			return call.Finish(map[string]any{"value": p.Value})
		},
		"fail": func(ctx context.Context, call *Call) error {
			return ArgumentError("bad %s", "thing")
		},
		"plain": func(ctx context.Context, call *Call) error {
			return errors.New("plain failure")
		},
		"panic": func(ctx context.Context, call *Call) error {
			panic("boom")
		},
		"nothing": func(ctx context.Context, call *Call) error { return nil },
		"wait": func(ctx context.Context, call *Call) error {
			<-ctx.Done()
			return ctx.Err()
		},
	}
}

func TestCallBothDirections(t *testing.T) {
	a, b := socketPair(t)
	server := NewConn(a, Options{Accepted: true, Handlers: echoHandlers()})
	client := NewConn(b, Options{Handlers: echoHandlers()})
	running(t, server)
	running(t, client)
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 50 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			var steps []int
			reply, err := client.Call(ctx, "echo", map[string]any{"value": i, "steps": 3}, func(m *Message) error {
				var s struct{ Step int }
				if err := m.Decode(&s); err != nil {
					return err
				}
				steps = append(steps, s.Step)
				return nil
			})
			if err != nil {
				errs <- err
				return
			}
			if got, _ := reply.Get("value"); string(got) != fmt.Sprint(i) {
				errs <- fmt.Errorf("client call %d: value %s", i, got)
			}
			if fmt.Sprint(steps) != "[0 1 2]" {
				errs <- fmt.Errorf("client call %d: steps %v", i, steps)
			}
		}()
		go func() {
			defer wg.Done()
			reply, err := server.Call(ctx, "echo", map[string]any{"value": fmt.Sprint("s", i)}, nil)
			if err != nil {
				errs <- err
				return
			}
			if got, _ := reply.GetString("value"); got != fmt.Sprint("s", i) {
				errs <- fmt.Errorf("server call %d: value %q", i, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := client.Pending() + server.Pending(); n != 0 {
		t.Errorf("%d calls still pending", n)
	}
}

func TestIDParity(t *testing.T) {
	for _, accepted := range []bool{true, false} {
		a, b := socketPair(t)
		c := NewConn(a, Options{Accepted: accepted})
		running(t, c)
		peer := newRawPeer(t, b)
		done := make(chan error, 1)
		go func() {
			for range 3 {
				if _, err := c.Call(context.Background(), "x", nil, nil); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		var ids []any
		for range 3 {
			m := peer.recv()
			ids = append(ids, m["id"])
			peer.send(fmt.Sprintf(`{"id":%v,"finished":true}`+"\n", m["id"]))
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want := "[2 4 6]"
		if accepted {
			want = "[3 5 7]"
		}
		if fmt.Sprint(ids) != want {
			t.Errorf("accepted=%v: ids %v, want %v", accepted, ids, want)
		}
	}
}

func TestHandlerFailures(t *testing.T) {
	a, b := socketPair(t)
	running(t, NewConn(a, Options{Accepted: true, Handlers: echoHandlers()}))
	peer := newRawPeer(t, b)
	cases := []struct {
		line      string
		wantClass string
		wantMsg   string
	}{
		{`{"id":2,"do":"fail"}`, "ArgumentError", "bad thing"},
		{`{"id":4,"do":"plain"}`, "RuntimeError", "plain failure"},
		{`{"id":6,"do":"panic"}`, "Panic", "boom"},
		{`{"id":8,"do":"bogus","x":1}`, "NoMethodError", `unknown operation "bogus"`},
		{`{"id":10,"do":42}`, "ArgumentError", `operation name ("do") must be a non-empty string`},
	}
	for _, tc := range cases {
		peer.send(tc.line + "\n")
		m := peer.recv()
		e, _ := m["error"].(map[string]any)
		if m["finished"] != true || m["failed"] != true || e == nil {
			t.Errorf("%s: reply %v is not a failure", tc.line, m)
			continue
		}
		if e["class"] != tc.wantClass || e["message"] != tc.wantMsg {
			t.Errorf("%s: error %v, want class %q message %q", tc.line, e, tc.wantClass, tc.wantMsg)
		}
	}
	// The connection still works after all of that.
	peer.send(`{"id":12,"do":"nothing"}` + "\n")
	if m := peer.recv(); m["id"] != 12.0 || m["finished"] != true || m["failed"] != nil {
		t.Errorf("after failures: %v", m)
	}
}

func TestBadInputIsSkipped(t *testing.T) {
	a, b := socketPair(t)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	running(t, NewConn(a, Options{Accepted: true, Handlers: echoHandlers(), Logger: logger}))
	peer := newRawPeer(t, b)
	for _, bad := range []string{
		`{"id":2,"do":"echo"`, // malformed (the original closed the connection here)
		`null`, `42`, ``, `"hello"`, `[1,2,3]`,
		`{"do":"echo"}`,             // no id
		`{"id":null,"do":"echo"}`,   // null id
		`{"id":99,"finished":true}`, // reply to nothing
	} {
		peer.send(bad + "\n")
	}
	// Odd ids, id 0, string ids, extra keys and CRLF are calls like any other.
	for _, line := range []string{
		`{"id":0,"do":"echo","value":"zero"}`,
		`{"id":"abc","do":"echo","value":"string id"}`,
		`{"id":3,"do":"echo","value":"odd"}`,
		`{"id":8,"do":"echo","value":"extra","extra":{"k":[1,2]}}`,
		"{\"id\":10,\"do\":\"echo\",\"value\":\"crlf\"}\r",
	} {
		peer.send(line + "\n")
		m := peer.recv()
		var want map[string]any
		_ = json.Unmarshal([]byte(line), &want)
		if m["id"] != want["id"] || m["value"] != want["value"] || m["finished"] != true {
			t.Errorf("%s: reply %v", line, m)
		}
	}
	out := logs.String()
	for _, want := range []string{"invalid JSON", "not a JSON object", "without id", "empty line"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestOversizedLineClosesConnection(t *testing.T) {
	a, b := socketPair(t)
	c := NewConn(a, Options{Accepted: true, Handlers: echoHandlers(), MaxLineSize: 1000})
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	peer := newRawPeer(t, b)
	// A long line under the limit is fine (longer than the read buffer).
	long := strings.Repeat("x", 900)
	peer.send(`{"id":2,"do":"echo","value":"` + long + `"}` + "\n")
	if m := peer.recv(); m["value"] != long {
		t.Fatalf("long line: %v", m)
	}
	peer.send(`{"id":4,"do":"echo","value":"` + strings.Repeat("y", 5000) + `"}` + "\n")
	peer.expectEOF()
	if err := <-errc; !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("Run returned %v, want ErrLineTooLong", err)
	}
}

func TestEndOfConnectionFailsPendingAndCancelsHandlers(t *testing.T) {
	a, b := socketPair(t)
	started := make(chan struct{})
	cancelled := make(chan struct{})
	handlers := Handlers{"block": func(ctx context.Context, call *Call) error {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	}}
	server := NewConn(a, Options{Accepted: true, Handlers: handlers})
	errc := make(chan error, 1)
	go func() { errc <- server.Run(context.Background()) }()
	peer := newRawPeer(t, b)
	peer.send(`{"id":2,"do":"block"}` + "\n")
	<-started

	// The server also waits on a call of its own that the peer never answers.
	callErr := make(chan error, 1)
	go func() {
		_, err := server.Call(context.Background(), "never", nil, nil)
		callErr <- err
	}()
	peer.recv() // the call reached the peer
	b.Close()   // the peer goes away

	select {
	case err := <-callErr:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("pending call returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pending call did not return when the connection ended")
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("handler context was not cancelled")
	}
	if err := <-errc; err != nil {
		t.Errorf("Run: %v", err)
	}
	if _, err := server.Call(context.Background(), "x", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("call on closed connection: %v", err)
	}
}

func TestLateReplyIsIgnored(t *testing.T) {
	a, b := socketPair(t)
	c := NewConn(a, Options{})
	running(t, c)
	peer := newRawPeer(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	var intermediates int
	go func() {
		_, err := c.Call(ctx, "slow", nil, func(*Message) error { intermediates++; return nil })
		errc <- err
	}()
	m := peer.recv()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call returned %v", err)
	}
	if c.Pending() != 0 {
		t.Fatalf("cancelled call still pending")
	}
	peer.send(fmt.Sprintf(`{"id":%v,"status":"late"}`+"\n", m["id"]))
	peer.send(fmt.Sprintf(`{"id":%v,"finished":true}`+"\n", m["id"]))
	// The connection keeps working and the next call gets its own reply.
	go func() {
		r, err := c.Call(context.Background(), "next", nil, nil)
		if err == nil && !r.Finished() {
			err = errors.New("not finished")
		}
		errc <- err
	}()
	m2 := peer.recv()
	if m2["do"] != "next" {
		t.Fatalf("next call: %v", m2)
	}
	peer.send(fmt.Sprintf(`{"id":%v,"finished":true}`+"\n", m2["id"]))
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if intermediates != 0 {
		t.Errorf("late reply reached the cancelled call's callback")
	}
}

func TestRemoteErrorForms(t *testing.T) {
	a, b := socketPair(t)
	c := NewConn(a, Options{})
	running(t, c)
	peer := newRawPeer(t, b)
	replies := []string{
		`"error":"Connection not found","connection_id":"nope"`,
		`"error":{"class":"ArgumentError","message":"Positive duration is required!","backtrace":[]}`,
	}
	for _, r := range replies {
		errc := make(chan error, 1)
		go func() { _, err := c.Call(context.Background(), "x", nil, nil); errc <- err }()
		m := peer.recv()
		peer.send(fmt.Sprintf(`{"id":%v,"finished":true,"failed":true,%s}`+"\n", m["id"], r))
		err := <-errc
		var re *RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("%s: error %v is not a RemoteError", r, err)
		}
		switch {
		case strings.Contains(r, "Connection not found"):
			if re.Class != "" || re.Message != "Connection not found" {
				t.Errorf("string form: %+v", re)
			}
			if id, _ := re.Reply.GetString("connection_id"); id != "nope" {
				t.Errorf("reply fields lost: %s", re.Reply)
			}
		default:
			if re.Class != "ArgumentError" || re.Message != "Positive duration is required!" {
				t.Errorf("object form: %+v", re)
			}
		}
	}
}

func TestRelayRewritesID(t *testing.T) {
	a, b := socketPair(t)
	in, err := Parse([]byte(`{"id":7,"finished":true,"data":"x\n","n":[1,{"id":3}]}`))
	if err != nil {
		t.Fatal(err)
	}
	handlers := Handlers{"relay": func(ctx context.Context, call *Call) error {
		inter, _ := Parse([]byte(`{"id":9,"progress":1}`))
		if err := call.Relay(inter); err != nil {
			return err
		}
		return call.Relay(in)
	}}
	running(t, NewConn(a, Options{Accepted: true, Handlers: handlers}))
	peer := newRawPeer(t, b)
	peer.send(`{"id":2,"do":"relay"}` + "\n")
	if m := peer.recv(); m["id"] != 2.0 || m["progress"] != 1.0 || m["finished"] != nil {
		t.Errorf("intermediate: %v", m)
	}
	m := peer.recv()
	if m["id"] != 2.0 || m["finished"] != true || m["data"] != "x\n" || fmt.Sprint(m["n"]) != "[1 map[id:3]]" {
		t.Errorf("final: %v", m)
	}
}

// syncBuffer is a buffer safe for concurrent writers and readers.
type syncBuffer = testutil.Buffer

type ctxKey struct{}

// TestHandlersSeeRunsContext: a handler's context carries Run's values.
func TestHandlersSeeRunsContext(t *testing.T) {
	a, b := socketPair(t)
	got := make(chan any, 1)
	c := NewConn(a, Options{Accepted: true, Handlers: Handlers{"value": func(ctx context.Context, call *Call) error {
		got <- ctx.Value(ctxKey{})
		return nil
	}}})
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.WithValue(context.Background(), ctxKey{}, "from Run")) }()
	peer := newRawPeer(t, b)
	peer.send(`{"id":2,"do":"value"}` + "\n")
	peer.recv()
	if v := <-got; v != "from Run" {
		t.Errorf("handler's context value: %v", v)
	}
	c.Close()
	<-errc
}
