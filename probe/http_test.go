package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// connCounter counts the connections an httptest.Server accepted.
type connCounter struct{ n atomic.Int64 }

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		c.n.Add(1)
	}
}

func newCountingServer(t *testing.T, h http.Handler) (*httptest.Server, *connCounter) {
	t.Helper()
	var cc connCounter
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = cc.hook
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &cc
}

// checkOnce makes one attempt of spec with a checker of its own.
func checkOnce(t *testing.T, spec Spec) error {
	t.Helper()
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	spec = spec.WithDefaults()
	chk, err := newChecker(spec, ExecRunner)
	if err != nil {
		t.Fatal(err)
	}
	defer chk.close()
	return chk.check(context.Background(), spec.Timeout)
}

func TestHTTPThresholdsOnRealServer(t *testing.T) {
	var status atomic.Int64
	status.Store(200)
	srv, conns := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		fmt.Fprintf(w, "status %d from %s\n", status.Load(), r.URL.Path)
	}))
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{}, clk)
	defer s.Close()
	h, err := s.Add(Spec{HTTP: &HTTP{URL: srv.URL + "/healthz"}, Interval: time.Second,
		Timeout: wait, FailureThreshold: 2, SuccessThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		status      int
		passed      bool
		consecutive int
		want        Status
	}{
		{200, true, 1, StatusUnknown},
		{204, true, 2, StatusPassing},
		{503, false, 1, StatusPassing},
		{399, true, 1, StatusPassing},
		{404, false, 1, StatusPassing},
		{500, false, 2, StatusFailing},
		{200, true, 1, StatusFailing},
		{302, true, 2, StatusPassing}, // no Location: not a redirect to follow
	}
	for i, step := range steps {
		status.Store(int64(step.status))
		if i > 0 {
			clk.Advance(time.Second)
		}
		r := next(t, s)
		if r.Handle != h || r.Passed != step.passed || r.Consecutive != step.consecutive || r.Status != step.want {
			t.Fatalf("step %d (status %d): got %+v", i, step.status, r)
		}
		if !step.passed {
			want := fmt.Sprintf("status %d, want 200-399: \"status %d from /healthz\"", step.status, step.status)
			if r.Err == nil || r.Err.Error() != want {
				t.Fatalf("step %d: error %v, want %s", i, r.Err, want)
			}
		}
	}
	if n := conns.n.Load(); n != 1 {
		t.Fatalf("%d connections for %d attempts, want 1 kept alive", n, len(steps))
	}
}

func TestHTTPHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	srv, _ := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		h.Set("Uri", r.RequestURI)
		got <- h
	}))
	err := checkOnce(t, Spec{HTTP: &HTTP{URL: srv.URL + "/ready?deep=1",
		Headers: http.Header{"Host": {"app.example"}, "X-Token": {"s3cret"}, "Accept-Language": {"fr", "en"}}}})
	if err != nil {
		t.Fatal(err)
	}
	h := <-got
	for k, want := range map[string]string{"Host": "app.example", "X-Token": "s3cret", "User-Agent": userAgent,
		"Uri": "/ready?deep=1", "Accept-Language": "fr"} {
		if h.Get(k) != want {
			t.Errorf("%s: %q, want %q", k, h.Get(k), want)
		}
	}
	if v := h.Values("Accept-Language"); len(v) != 2 {
		t.Errorf("Accept-Language: %q, want both values", v)
	}
	err = checkOnce(t, Spec{HTTP: &HTTP{URL: srv.URL, Headers: http.Header{"User-Agent": {"mine"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if h := <-got; h.Get("User-Agent") != "mine" || h.Get("Uri") != "/" {
		t.Errorf("got %v", h)
	}
}

func TestHTTPRedirects(t *testing.T) {
	other, _ := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
	}))
	mux := http.NewServeMux()
	redirect := func(path, to string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) })
	}
	redirect("/one", "/two")
	redirect("/two", "three") // relative to /two
	redirect("/three", "/ok")
	redirect("/four", "/one")
	redirect("/toerror", "/error")
	redirect("/loop", "/loop")
	redirect("/elsewhere", other.URL+"/error")
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	srv, _ := newCountingServer(t, mux)
	tests := []struct {
		path string
		want string // "" for a pass
	}{
		{"/ok", ""},
		{"/three", ""},
		{"/one", ""}, // three redirects
		{"/four", "stopped after 3 redirects, at " + srv.URL + "/ok"}, // the 4th
		{"/toerror", `status 503, want 200-399: "down"`},
		{"/loop", "stopped after 3 redirects"},
		{"/elsewhere", ""}, // not followed: the 302 decides
	}
	for _, tt := range tests {
		err := checkOnce(t, Spec{HTTP: &HTTP{URL: srv.URL + tt.path}})
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: got %v, want %q", tt.path, err, tt.want)
		}
	}
	// A range without 3xx: the redirect elsewhere fails.
	err := checkOnce(t, Spec{HTTP: &HTTP{URL: srv.URL + "/elsewhere", Status: StatusRange{Min: 200, Max: 299}}})
	if err == nil || !strings.Contains(err.Error(), "status 302, want 200-299") {
		t.Errorf("got %v", err)
	}
}

func TestHTTPBodyCappedAndDrained(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 1<<20)))
	})
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("y", bodyLimit)))
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		for range 4 {
			w.Write([]byte("chunk"))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/bigerror", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		w.Write([]byte(strings.Repeat("e", 1<<20)))
	})
	srv, conns := newCountingServer(t, mux)
	attempts := func(path string, n int) error {
		spec := Spec{HTTP: &HTTP{URL: srv.URL + path}}.WithDefaults()
		chk, err := newChecker(spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer chk.close()
		for range n {
			if err := chk.check(context.Background(), wait); err != nil {
				return err
			}
		}
		return nil
	}
	for _, tt := range []struct {
		path  string
		conns int64 // for 3 attempts
	}{{"/small", 1}, {"/chunked", 1}, {"/big", 3}} {
		before := conns.n.Load()
		if err := attempts(tt.path, 3); err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		if n := conns.n.Load() - before; n != tt.conns {
			t.Errorf("%s: %d connections for 3 attempts, want %d", tt.path, n, tt.conns)
		}
	}
	err := attempts("/bigerror", 1)
	if err == nil || len(err.Error()) > snippetLimit+100 || !strings.Contains(err.Error(), "status 500") {
		t.Fatalf("got %v, want a status 500 with a short quote", err)
	}
}

// rawServer accepts connections on loopback and hands each to serve on a
// goroutine of its own; Cleanup closes everything and waits.
func rawServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Go(func() { serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestHTTPRetriesAConnectionClosedWhileIdle(t *testing.T) {
	closed := make(chan struct{}, 10)
	var conns atomic.Int64
	// Answers one request as if keeping the connection alive, then closes
	// it, as a server's idle timeout does.
	addr := rawServer(t, func(c net.Conn) {
		defer c.Close()
		conns.Add(1)
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close()
		closed <- struct{}{}
	})
	spec := Spec{HTTP: &HTTP{URL: "http://" + addr + "/"}}.WithDefaults()
	chk, err := newChecker(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer chk.close()
	for i := range 3 {
		if err := chk.check(context.Background(), wait); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		<-closed
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

func TestHTTPTimeouts(t *testing.T) {
	// Reads the request and never answers.
	silent := rawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	// Sends the headers and never the body.
	halfway := rawServer(t, func(c net.Conn) {
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
		io.Copy(io.Discard, c)
	})
	for _, addr := range []string{silent, halfway} {
		start := time.Now()
		err := checkOnce(t, Spec{HTTP: &HTTP{URL: "http://" + addr + "/"}, Timeout: 300 * time.Millisecond})
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "after 300ms") {
			t.Errorf("%s: got %v, want a timeout", addr, err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("%s: failed after %v, before its timeout", addr, d)
		}
	}
}

func TestHTTPRemoveInterruptsAttempt(t *testing.T) {
	accepted := make(chan struct{}, 1)
	addr := rawServer(t, func(c net.Conn) {
		http.ReadRequest(bufio.NewReader(c))
		accepted <- struct{}{}
		io.Copy(io.Discard, c)
	})
	s := New(context.Background(), Options{})
	defer s.Close()
	h, err := s.Add(Spec{HTTP: &HTTP{URL: "http://" + addr + "/"}, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	<-accepted
	s.Remove(h)
	eventually(t, "the attempt is interrupted", func() bool { return s.counts() == (counts{workers: 1}) })
	none(t, s)
}

func TestHTTPS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			w.WriteHeader(400)
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	for range 2 {
		if err := checkOnce(t, Spec{HTTP: &HTTP{URL: srv.URL + "/"}}); err != nil {
			t.Fatal(err)
		}
	}
	// http to a TLS port: the server answers 400 to the plain request.
	err := checkOnce(t, Spec{HTTP: &HTTP{URL: strings.Replace(srv.URL, "https", "http", 1)}})
	if err == nil {
		t.Fatal("plain http to a TLS server passed")
	}
}

func TestHTTPRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = checkOnce(t, Spec{HTTP: &HTTP{URL: "http://" + addr + "/"}})
	if err == nil || !strings.Contains(err.Error(), "connection refused") || errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want connection refused", err)
	}
}
