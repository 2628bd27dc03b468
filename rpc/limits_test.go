package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/testutil"
)

func TestInFlightLimitPushesBack(t *testing.T) {
	a, b := socketPair(t)
	var started atomic.Int32
	release := make(chan struct{})
	handlers := Handlers{"hold": func(ctx context.Context, call *Call) error {
		started.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return call.Finish(nil)
	}}
	c := NewConn(a, Options{Accepted: true, Handlers: handlers, MaxInFlight: 2})
	running(t, c)
	peer := newRawPeer(t, b)
	for i := range 5 {
		peer.send(`{"id":` + strconv.Itoa(2+2*i) + `,"do":"hold"}` + "\n")
	}
	deadline := time.Now().Add(10 * time.Second)
	for started.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// The third call is read only when one of the first two ends.
	time.Sleep(200 * time.Millisecond)
	if n := started.Load(); n != 2 {
		t.Fatalf("%d handlers started with MaxInFlight 2", n)
	}
	close(release)
	for range 5 {
		if m := peer.recv(); m["finished"] != true {
			t.Fatalf("reply %v", m)
		}
	}
	if n := started.Load(); n != 5 {
		t.Errorf("%d handlers ran, want 5", n)
	}
}

func TestPartialLineTimesOut(t *testing.T) {
	a, b := socketPair(t)
	c := NewConn(a, Options{Accepted: true, Handlers: echoHandlers(), LineTimeout: 300 * time.Millisecond})
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	peer := newRawPeer(t, b)

	// Idle for longer than the timeout: no fault.
	time.Sleep(500 * time.Millisecond)
	peer.send(`{"id":2,"do":"echo","value":1}` + "\n")
	if m := peer.recv(); m["value"] != 1.0 {
		t.Fatalf("after idling: %v", m)
	}
	// A line dripped a byte at a time, each well within the timeout, but not
	// completed within it from its first byte.
	start := time.Now()
	for _, ch := range `{"id":4,"do":"echo","value":"slow"` {
		if _, err := b.Write([]byte(string(ch))); err != nil {
			break // closed: expected
		}
		time.Sleep(50 * time.Millisecond)
		if time.Since(start) > 10*time.Second {
			t.Fatal("still open after 10s")
		}
	}
	peer.expectEOF()
	if err := <-errc; !errors.Is(err, ErrLineTimeout) {
		t.Fatalf("Run returned %v, want ErrLineTimeout", err)
	}
}

func TestHalfCloseIsAnswered(t *testing.T) {
	for range 20 {
		a, b := socketPair(t)
		handlers := Handlers{"slow": func(ctx context.Context, call *Call) error {
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			return call.Finish(map[string]string{"data": "done"})
		}}
		c := NewConn(a, Options{Accepted: true, Handlers: handlers})
		errc := make(chan error, 1)
		go func() { errc <- c.Run(context.Background()) }()
		peer := newRawPeer(t, b)
		peer.send(`{"id":2,"do":"slow"}` + "\n" + `{"id":4,"do":"slow"}` + "\n")
		if err := b.(*net.UnixConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got := map[any]bool{}
		for range 2 {
			m := peer.recv()
			if m["data"] != "done" {
				t.Fatalf("reply after a half-close: %v", m)
			}
			got[m["id"]] = true
		}
		if len(got) != 2 {
			t.Fatalf("replies: %v", got)
		}
		peer.expectEOF()
		if err := <-errc; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
}

func TestHalfCloseFailsOwnCalls(t *testing.T) {
	a, b := socketPair(t)
	c := NewConn(a, Options{Accepted: true})
	running(t, c)
	peer := newRawPeer(t, b)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "never", nil, nil)
		errc <- err
	}()
	peer.recv()
	b.(*net.UnixConn).CloseWrite()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("call pending at the peer's half-close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a call the peer can no longer answer still waits")
	}
}

func TestLogsCarryNoContent(t *testing.T) {
	for _, debug := range []bool{false, true} {
		a, b := socketPair(t)
		var logs testutil.Buffer
		level := slog.LevelInfo
		if debug {
			level = slog.LevelDebug
		}
		logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: level}))
		c := NewConn(a, Options{Accepted: true, Handlers: echoHandlers(), Logger: logger})
		running(t, c)
		peer := newRawPeer(t, b)
		peer.send(`{"password":"hunter2-bad-json` + "\n")
		peer.send(`{"do":"echo","token":"hunter2-no-id"}` + "\n")
		peer.send(`["hunter2-array"]` + "\n")
		peer.send(`{"id":2,"do":"echo","value":1}` + "\n")
		peer.recv()
		out := logs.String()
		for _, want := range []string{"ignoring bad message", "ignoring message without id", "bytes="} {
			if !strings.Contains(out, want) {
				t.Errorf("debug=%v: log lacks %q:\n%s", debug, want, out)
			}
		}
		if got := strings.Contains(out, "hunter2"); got != debug {
			t.Errorf("debug=%v: client data in the log: %v\n%s", debug, got, out)
		}
	}
}

// Lines of every size around the reader's buffer sizes, sent in one go,
// keep their framing.
func TestLinesOfEverySize(t *testing.T) {
	a, b := socketPair(t)
	c := NewConn(a, Options{Accepted: true, Handlers: echoHandlers()})
	running(t, c)
	peer := newRawPeer(t, b)
	sizes := []int{0, 10, readBufferSize - 40, readBufferSize, readBufferSize + 1, readBufferKeep - 30, readBufferKeep - 29, readBufferKeep, 5000, 2*readBufferKeep + 3, 64<<10 - 1, 64<<10 + 7, 3*64<<10 + 11, 10}
	var all strings.Builder
	for i, n := range sizes {
		fmt.Fprintf(&all, `{"id":%d,"do":"echo","value":"%s"}`+"\n", 2+2*i, strings.Repeat("v", n))
	}
	go b.Write([]byte(all.String()))
	got := map[float64]string{}
	for range sizes {
		m := peer.recv()
		id, _ := m["id"].(float64)
		got[id], _ = m["value"].(string)
	}
	for i, n := range sizes { // the handlers run at once: any order
		if v, ok := got[float64(2+2*i)]; !ok || v != strings.Repeat("v", n) {
			t.Errorf("call %d (a line of %d): %v, a value of %d bytes", 2+2*i, n, ok, len(v))
		}
	}
}

// goroutineID is the id of the calling goroutine, from its stack's header.
func goroutineID() string {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	f := strings.Fields(string(buf[:n]))
	return f[1]
}

// Calls that come one after another are served by the goroutine that
// served the one before (its stack already grown); calls at once by as
// many goroutines; and the spare goroutine ends with the connection.
func TestSequentialCallsShareAGoroutine(t *testing.T) {
	a, b := socketPair(t)
	ids := make(chan string, 100)
	release := make(chan struct{})
	handlers := Handlers{
		"who": func(ctx context.Context, call *Call) error {
			ids <- goroutineID()
			return call.Finish(nil)
		},
		"hold": func(ctx context.Context, call *Call) error {
			ids <- goroutineID()
			<-release
			return call.Finish(nil)
		},
	}
	server := NewConn(a, Options{Accepted: true, Handlers: handlers})
	stop := running(t, server)
	client := NewConn(b, Options{})
	running(t, client)
	ctx := context.Background()
	seen := map[string]bool{}
	for range 20 {
		if _, err := client.Call(ctx, "who", nil, nil); err != nil {
			t.Fatal(err)
		}
		seen[<-ids] = true
	}
	// A call may come before the goroutine of the one before has made
	// itself the spare (it writes the reply first): a second goroutine.
	if len(seen) > 5 {
		t.Errorf("20 calls one after another served by %d goroutines, want 1 or 2", len(seen))
	}
	// Two at once: two goroutines.
	done := make(chan error, 2)
	for range 2 {
		go func() { _, err := client.Call(ctx, "hold", nil, nil); done <- err }()
	}
	if x, y := <-ids, <-ids; x == y {
		t.Errorf("two calls at once served by one goroutine %s", x)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// After spareFor, a call gets a goroutine again.
	time.Sleep(spareFor + 50*time.Millisecond)
	if _, err := client.Call(ctx, "who", nil, nil); err != nil {
		t.Fatal(err)
	}
	<-ids
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// goleak (TestMain) checks that no server goroutine outlives the test.
}
