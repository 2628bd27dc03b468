//go:build linux

package probe

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{}, clk)
	defer s.Close()
	if _, err := s.Add(Spec{TCP: &TCP{Address: addr}, Interval: time.Second, FailureThreshold: 1}); err != nil {
		t.Fatal(err)
	}
	if r := next(t, s); !r.Passed || r.Status != StatusPassing {
		t.Fatalf("got %+v", r)
	}
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	ln.Close()
	clk.Advance(time.Second)
	r := next(t, s)
	if r.Passed || r.Status != StatusFailing || !strings.Contains(r.Err.Error(), "connection refused") {
		t.Fatalf("got %+v", r)
	}
}

// fullListener returns the address of a socket that listens with a
// backlog of 0 and never accepts, its queue filled: the kernel drops the
// next connections' SYNs, so they hang until their timeout.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// Fill the queue until a connect hangs.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
		if i == 10 {
			t.Skip("the kernel accepts connections past a backlog of 0")
		}
	}
	return addr
}

func TestTCPTimeout(t *testing.T) {
	addr := fullListener(t)
	start := time.Now()
	err := checkOnce(t, Spec{TCP: &TCP{Address: addr}, Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "after 300ms") {
		t.Fatalf("got %v, want a timeout", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("failed after %v, before its timeout", d)
	}
}
