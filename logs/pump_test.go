package logs

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestPumpGatherEndsWhenTheQueueFills: after a small write the pump waits
// to gather, but a burst that fills a quarter of its queue is written at
// once, not dropped.
func TestPumpGatherEndsWhenTheQueueFills(t *testing.T) {
	var mu sync.Mutex
	var written int
	p := newPump("test", 4000, toFile, func(bs []*batch) {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bs {
			written += len(b.data)
		}
	}, nil)
	p.gatherBelow, p.gather = 1000, time.Hour
	c := &Capture{}
	mk := func(n int) *batch { return &batch{cap: c, data: make([]byte, n), lines: 1} }
	if !p.deliver(mk(10)) {
		t.Fatal("first batch dropped")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		w := written
		mu.Unlock()
		if w == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first batch was not written")
		}
		time.Sleep(time.Millisecond)
	}
	// The pump now waits an hour to gather; a burst ends the wait.
	for i := range 3 {
		if !p.deliver(mk(600)) {
			t.Fatalf("burst batch %d dropped", i)
		}
	}
	for {
		mu.Lock()
		w := written
		mu.Unlock()
		if w == 1810 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the burst waits: %d bytes written", w)
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.close(ctx); err != nil {
		t.Fatal(err)
	}
}
