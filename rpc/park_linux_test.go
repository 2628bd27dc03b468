//go:build linux

package rpc

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// parkerRunning starts a Parker, stopped at the end of the test.
func parkerRunning(t *testing.T) *Parker {
	t.Helper()
	p, err := NewParker()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Parker.Run: %v", err)
		}
	})
	return p
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startParked serves echoHandlers on one end of n socket pairs, each
// parking after 30 ms, and returns the other ends (as clients) and the
// channels that get the server ends' Start results.
func startParked(t *testing.T, p *Parker, n int) ([]*Conn, []*Conn, []chan error) {
	t.Helper()
	var servers, clients []*Conn
	var ended []chan error
	for range n {
		a, b := socketPair(t)
		s := NewConn(a, Options{Accepted: true, Handlers: echoHandlers(), Parker: p, ParkAfter: 30 * time.Millisecond})
		e := make(chan error, 1)
		s.Start(context.Background(), func(err error) { e <- err })
		c := NewConn(b, Options{Handlers: echoHandlers()})
		running(t, c)
		servers, clients, ended = append(servers, s), append(clients, c), append(ended, e)
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Close()
		}
		for _, e := range ended {
			<-e
		}
	})
	return servers, clients, ended
}

func TestIdleConnectionsParkWithoutGoroutines(t *testing.T) {
	p := parkerRunning(t)
	const n = 50
	before := runtime.NumGoroutine()
	_, clients, _ := startParked(t, p, n)
	ctx := context.Background()
	for _, c := range clients {
		if _, err := c.Call(ctx, "echo", map[string]any{"value": 1}, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "all parked", func() bool { return p.Parked() == n })
	// The clients keep a goroutine each (no Parker); the servers none.
	waitUntil(t, "the servers' goroutines gone", func() bool { return runtime.NumGoroutine()-before <= n+2 })

	// A parked connection is woken by a call, answers, and parks again.
	reply, err := clients[7].Call(ctx, "echo", map[string]any{"value": "again", "steps": 2}, nil)
	if err != nil || reply.String() != `{"id":4,"finished":true,"value":"again"}` {
		t.Fatalf("call to a parked connection: %v %v", reply, err)
	}
	waitUntil(t, "parked again", func() bool { return p.Parked() == n })
}

func TestParkedConnectionEnds(t *testing.T) {
	p := parkerRunning(t)
	servers, clients, ended := startParked(t, p, 3)
	waitUntil(t, "all parked", func() bool { return p.Parked() == 3 })

	servers[0].Close() // by its owner
	if err := <-ended[0]; err != nil {
		t.Errorf("closed while parked: %v", err)
	}
	ended[0] <- nil // for the cleanup

	clients[1].Close() // by the peer: EOF
	select {
	case err := <-ended[1]:
		if err != nil {
			t.Errorf("peer gone while parked: %v", err)
		}
		ended[1] <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("a parked connection whose peer went away did not end")
	}
	if got := p.Parked(); got != 1 {
		t.Errorf("%d parked, want 1", got)
	}
}

func TestParkedConnectionEndsWithItsContext(t *testing.T) {
	p := parkerRunning(t)
	a, b := socketPair(t)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	s := NewConn(a, Options{Accepted: true, Handlers: echoHandlers(), Parker: p, ParkAfter: 20 * time.Millisecond})
	ended := make(chan error, 1)
	s.Start(ctx, func(err error) { ended <- err })
	waitUntil(t, "parked", func() bool { return p.Parked() == 1 })
	cancel()
	if err := <-ended; err != nil {
		t.Errorf("Start's end: %v", err)
	}
	if p.Parked() != 0 {
		t.Error("still in the Parker after its end")
	}
}

// A parked connection's own call gets its reply: the reply wakes it.
func TestParkedConnectionCallsOut(t *testing.T) {
	p := parkerRunning(t)
	servers, _, _ := startParked(t, p, 1)
	waitUntil(t, "parked", func() bool { return p.Parked() == 1 })
	reply, err := servers[0].Call(context.Background(), "echo", map[string]any{"value": 5}, nil)
	if err != nil || reply.String() != `{"id":3,"finished":true,"value":5}` {
		t.Fatalf("a call from a parked connection: %v %v", reply, err)
	}
}

// Once the Parker has stopped, parked connections stay parked until they
// are closed, and end then.
func TestParkerStoppedFirst(t *testing.T) {
	p, err := NewParker()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	a, b := socketPair(t)
	defer b.Close()
	s := NewConn(a, Options{Accepted: true, Parker: p, ParkAfter: 20 * time.Millisecond})
	ended := make(chan error, 1)
	s.Start(context.Background(), func(err error) { ended <- err })
	waitUntil(t, "parked", func() bool { return p.Parked() == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := <-ended; err != nil {
		t.Errorf("end: %v", err)
	}
}

// A line that takes longer than ParkAfter is no fault when lines have no
// timeout: the park deadline does not apply to a line under way.
func TestSlowLineWithoutLineTimeoutIsNotParkedAway(t *testing.T) {
	p := parkerRunning(t)
	a, b := socketPair(t)
	s := NewConn(a, Options{Accepted: true, Handlers: echoHandlers(), Parker: p, ParkAfter: 30 * time.Millisecond, LineTimeout: -1})
	ended := make(chan error, 1)
	s.Start(context.Background(), func(err error) { ended <- err })
	defer func() { s.Close(); <-ended }()
	peer := newRawPeer(t, b)
	peer.send(`{"id":2,"do":"echo",`)
	time.Sleep(150 * time.Millisecond)
	peer.send(`"value":"slow"}` + "\n")
	if m := peer.recv(); m["value"] != "slow" {
		t.Fatalf("reply %v", m)
	}
	// And it parks once idle.
	waitUntil(t, "parked", func() bool { return p.Parked() == 1 })
}
