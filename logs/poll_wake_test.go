//go:build linux

package logs

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestPollerWakeNotLost: captures added one after the other, as a
// thousand children starting, each wake the reader; none of those
// wake-ups is lost. (The reader once cleared its wake-up after taking the
// captures added: one added in between waited, not even watched, until
// something else woke the reader, in about one round in ten here; its
// child's line was not read, and had it written 1 MiB it would have
// blocked.) Each round's last child writes a line, which must be read
// while nothing else happens.
func TestPollerWakeNotLost(t *testing.T) {
	const n, rounds = 1000, 60
	for round := range rounds {
		h := New(Options{Settings: Settings{RingLines: 10}})
		ws := make([]*os.File, n)
		caps := make([]*Capture, n)
		for i := range n {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			ws[i] = w
			caps[i] = h.Capture(Identity{Service: "wake", Instance: i, PID: i + 1}, r, nil)
		}
		if _, err := ws[n-1].Write([]byte("up\n")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for caps[n-1].Stats().Lines == 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
		read := caps[n-1].Stats().Lines
		for i, w := range ws {
			w.Close()
			caps[i].Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := h.Close(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if read == 0 {
			t.Fatalf("round %d: the last child's line was not read within 5 s", round)
		}
	}
}
