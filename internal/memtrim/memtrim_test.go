package memtrim

import (
	"context"
	"encoding/json"
	"regexp"
	"runtime"
	"testing"
	"time"
)

// garbage keeps the compiler from seeing that an allocation is unused.
var garbage [][]byte

func TestTrimReturnsHeap(t *testing.T) {
	for range 64 {
		garbage = append(garbage, make([]byte, 512<<10)) // 32 MiB, then dropped
	}
	garbage = nil
	r, err := Trim()
	if err != nil && runtime.GOOS == "linux" {
		t.Fatal(err)
	}
	if r.Heap < 16<<20 {
		t.Errorf("heap returned: %d bytes, want at least 16 MiB of the 32 MiB dropped", r.Heap)
	}
}

func TestRunTrimsUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	trims := make(chan error, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, 0, 5*time.Millisecond, func(_ Result, err error) { trims <- err })
	}()
	for range 3 {
		select {
		case err := <-trims:
			if err != nil && runtime.GOOS == "linux" {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no trim within 10 s")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestRunOnce(t *testing.T) {
	n := 0
	Run(context.Background(), 0, 0, func(Result, error) { n++ })
	if n != 1 {
		t.Fatalf("trims with every = 0: %d, want 1", n)
	}
}

// work runs code the test has not run since the trim: the pages dropped
// come back on their first use.
func work() (string, error) {
	re := regexp.MustCompile(`^(\w+)-(\d+)$`)
	m := re.FindStringSubmatch("vigil-42")
	b, err := json.Marshal(map[string]any{"m": m, "t": time.Unix(0, 0).UTC()})
	return string(b), err
}

func TestWorkAfterTrim(t *testing.T) {
	want, err := work()
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := Trim(); err != nil && runtime.GOOS == "linux" {
			t.Fatal(err)
		}
		got, err := work()
		if err != nil || got != want {
			t.Fatalf("after a trim: %q, %v; before: %q", got, err, want)
		}
	}
}
