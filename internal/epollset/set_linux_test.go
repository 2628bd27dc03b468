package epollset

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSet(t *testing.T) {
	s, err := New(1 << 40)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	const data = 7<<33 | 5
	if err := s.Ctl(unix.EPOLL_CTL_ADD, p[0], unix.EPOLLIN, data); err != nil {
		t.Fatal(err)
	}
	events := make([]unix.EpollEvent, 8)

	// Nothing: the deadline ends the wait.
	start := time.Now()
	if n := s.Wait(events, start.Add(20*time.Millisecond)); n != 0 {
		t.Fatalf("%d events from an empty set", n)
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Fatalf("the wait ended before its deadline: %v", time.Since(start))
	}
	// A past deadline: no wait at all, and nothing.
	if n := s.Wait(events, time.Now().Add(-time.Second)); n != 0 {
		t.Fatalf("%d events", n)
	}

	// A write: the pipe's event, with its data.
	if _, err := Write(p[1], []byte("x")); err != nil {
		t.Fatal(err)
	}
	n := s.Wait(events, time.Time{})
	if n != 1 || Data(&events[0]) != data || s.IsWake(&events[0]) {
		t.Fatalf("events %v, want the pipe's (data %#x)", events[:n], data)
	}
	var b [4]byte
	if k, err := Read(p[0], b[:]); k != 1 || err != nil {
		t.Fatalf("read %d, %v", k, err)
	}
	if _, err := Read(p[0], b[:]); err != unix.EAGAIN {
		t.Fatalf("read of an empty pipe: %v, want EAGAIN", err)
	}

	// A wake-up from another goroutine ends a wait with no deadline; it
	// stays until cleared (level-triggered).
	go func() {
		time.Sleep(10 * time.Millisecond)
		s.Wake()
	}()
	for range 2 {
		n = s.Wait(events, time.Time{})
		if n != 1 || !s.IsWake(&events[0]) {
			t.Fatalf("events %v, want the wake-up", events[:n])
		}
	}
	s.ClearWake()
	if n := s.Wait(events, time.Now().Add(10*time.Millisecond)); n != 0 {
		t.Fatalf("%d events after the wake-up was cleared", n)
	}

	// Removed, the pipe wakes nothing.
	if err := s.Ctl(unix.EPOLL_CTL_DEL, p[0], 0, 0); err != nil {
		t.Fatal(err)
	}
	_, _ = Write(p[1], []byte("y"))
	if n := s.Wait(events, time.Now().Add(10*time.Millisecond)); n != 0 {
		t.Fatalf("%d events from a removed pipe", n)
	}
	if err := s.Ctl(unix.EPOLL_CTL_DEL, p[0], 0, 0); err == nil {
		t.Fatal("a second removal did not fail")
	}
}

func TestWaitidNoHang(t *testing.T) {
	var info unix.Siginfo
	// No child to wait for: ECHILD, at once.
	if err := Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG); err != unix.ECHILD {
		t.Fatalf("waitid with no child: %v, want ECHILD", err)
	}
}
