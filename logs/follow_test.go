package logs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func next(t *testing.T, s *Subscription) ([]string, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lines, lost, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return texts(lines), lost
}

func TestFollowKeptThenLiveAcrossRestarts(t *testing.T) {
	h := newHub(t, Options{})
	first := h.Capture(Identity{Service: "web", Instance: 0, PID: 1}, nil, nil)
	other := h.Capture(Identity{Service: "job", Instance: 0, PID: 2}, nil, nil)
	feed(first, Stdout, "a\nb\nc\n")
	s := h.Follow(Query{Service: "web", N: 2}, 0)
	defer s.Close()
	if got, _ := next(t, s); strings.Join(got, " ") != "b c" {
		t.Fatalf("kept lines: %q", got)
	}
	feed(other, Stdout, "not web\n")
	feed(first, Stderr, "d\n")
	if got, _ := next(t, s); strings.Join(got, " ") != "d" {
		t.Fatalf("live line: %q", got)
	}
	// A restart: the new process's lines come through the same follow.
	second := h.Capture(Identity{Service: "web", Instance: 0, PID: 3}, nil, nil)
	feed(second, Stdout, "e\n")
	lines, _, err := s.Next(context.Background())
	if err != nil || len(lines) != 1 || string(lines[0].Text) != "e" || lines[0].PID != 3 {
		t.Fatalf("after the restart: %+v, %v", lines, err)
	}
	// Next waits for a line, or for its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next with nothing new: %v", err)
	}
	s.Close()
	if _, _, err := s.Next(context.Background()); !errors.Is(err, ErrSubscriptionClosed) {
		t.Errorf("Next after Close: %v", err)
	}
}

// TestFollowLosesNoLineAndRepeatsNone starts a follow while a writer
// feeds numbered lines as fast as it can: the kept lines and the live ones
// join with no gap and no repeat.
func TestFollowLosesNoLineAndRepeatsNone(t *testing.T) {
	for range 20 {
		h := New(Options{Settings: Settings{RingLines: 1 << 20}})
		c := h.Capture(Identity{Service: "web", PID: 1}, nil, nil)
		const total = 3000
		var wg sync.WaitGroup
		started := make(chan struct{})
		wg.Go(func() {
			for i := range total {
				if i == 100 {
					close(started)
				}
				feed(c, Stream(1+i%2), strconv.Itoa(i)+"\n")
			}
		})
		<-started
		s := h.Follow(Query{}, total)
		var got []int
		for len(got) == 0 || got[len(got)-1] != total-1 {
			lines, lost := next(t, s)
			if lost > 0 {
				t.Fatalf("lost %d lines with a buffer for all", lost)
			}
			for _, l := range lines {
				n, _ := strconv.Atoi(l)
				got = append(got, n)
			}
		}
		wg.Wait()
		s.Close()
		if got[0] != 0 || len(got) != total {
			t.Fatalf("followed %d lines from %d, want %d from 0", len(got), got[0], total)
		}
		seen := make(map[int]bool)
		for _, n := range got {
			if seen[n] {
				t.Fatalf("line %d twice", n)
			}
			seen[n] = true
		}
		h.Close(context.Background())
	}
}

func TestSlowFollowerLosesLinesAndIsTold(t *testing.T) {
	h := newHub(t, Options{})
	c := h.Capture(Identity{Service: "web", PID: 1}, nil, nil)
	s := h.Follow(Query{}, 10)
	defer s.Close()
	for i := range 25 {
		feed(c, Stdout, fmt.Sprintf("%d\n", i))
	}
	lines, lost := next(t, s)
	if strings.Join(lines, " ") != "0 1 2 3 4 5 6 7 8 9" || lost != 15 {
		t.Errorf("slow follower got %q and lost %d, want 0..9 and 15", lines, lost)
	}
	feed(c, Stdout, "25\n")
	if lines, lost := next(t, s); strings.Join(lines, " ") != "25" || lost != 0 {
		t.Errorf("then %q, lost %d", lines, lost)
	}
	// The capture kept every line whatever the follower did.
	if n := len(h.Lines(Query{})); n != 26 {
		t.Errorf("ring: %d lines", n)
	}
}
