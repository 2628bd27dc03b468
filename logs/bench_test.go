package logs

import (
	"context"
	"os"
	"testing"
	"time"
)

// BenchmarkCaptureStart: a thousand children starting, each captured with
// a pipe that stays quiet (so every read waits for its event): the cost
// of Capture and of the reader's wake-up for each, while the others are
// already being read. The pipes' write ends are held by the benchmark.
func BenchmarkCaptureStart(b *testing.B) {
	const n = 1000
	for b.Loop() {
		b.StopTimer()
		h := New(Options{Settings: Settings{RingLines: 10}})
		var rs, ws []*os.File
		for range n {
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			rs, ws = append(rs, r), append(ws, w)
		}
		b.StartTimer()
		caps := make([]*Capture, n)
		for i, r := range rs {
			caps[i] = h.Capture(Identity{Service: "bench", Instance: i, PID: i + 1}, r, nil)
		}
		// The last one is in the reader's set once a line written to it
		// is read.
		if _, err := ws[n-1].Write([]byte("up\n")); err != nil {
			b.Fatal(err)
		}
		for caps[n-1].Stats().Lines == 0 {
			time.Sleep(50 * time.Microsecond)
		}
		b.StopTimer()
		for i, w := range ws {
			w.Close()
			caps[i].Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := h.Close(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		b.StartTimer()
	}
}
