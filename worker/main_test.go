package worker_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/worker"
)

// helperEnv makes the test binary play the helper worker.
const helperEnv = "VIGIL_WORKER_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "worker" {
		os.Exit(helperWorker())
	}
	goleak.VerifyTestMain(m)
}

// helperWorker is a worker process with recognisable behaviour: a parked
// goroutine, a retained heap allocation, steady garbage, and operations
// that leak or burn CPU on demand. It exits 0 on SIGINT/SIGTERM.
func helperWorker() int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	n, err := worker.NewNotifier(nil, logger)
	if err != nil {
		logger.Error("notifier", "error", err)
		return 2
	}
	defer n.Close()
	retained := allocateRetainedHeapSite()

	var wg sync.WaitGroup
	wg.Go(func() { distinctiveParkedGoroutine(ctx) })
	wg.Go(func() { steadyChurnAllocator(ctx) })

	var mu sync.Mutex
	var leaked [][][]byte
	handlers := rpc.Handlers{
		"ping": func(ctx context.Context, call *rpc.Call) error {
			return call.Finish(map[string]any{"pong": true, "pid": os.Getpid()})
		},
		"leak": func(ctx context.Context, call *rpc.Call) error {
			l := leakDuringWindow()
			mu.Lock()
			leaked = append(leaked, l)
			mu.Unlock()
			return call.Finish(map[string]any{"leaked": len(l)})
		},
		"burn": func(ctx context.Context, call *rpc.Call) error {
			var p struct{ Duration float64 }
			if err := call.Message().Decode(&p); err != nil || p.Duration <= 0 {
				return rpc.ArgumentError("burn: duration must be positive")
			}
			x := busySpinCPUBurner(ctx, time.Duration(p.Duration*float64(time.Second)))
			return call.Finish(map[string]any{"spins": x})
		},
		"gc": func(ctx context.Context, call *rpc.Call) error {
			runtime.GC()
			runtime.GC()
			return nil
		},
	}
	w, err := worker.Start(ctx, worker.Options{Logger: logger, Handlers: handlers, State: map[string]any{"role": "helper"}})
	if err != nil {
		logger.Error("start", "error", err)
		return 2
	}
	if err := n.Ready(); err != nil {
		logger.Error("ready", "error", err)
		return 2
	}
	<-ctx.Done()
	_ = n.Stopping()
	w.Stop()
	wg.Wait()
	runtime.KeepAlive(retained)
	mu.Lock()
	runtime.KeepAlive(leaked)
	mu.Unlock()
	return 0
}

// allocateRetainedHeapSite allocates 8 MiB in 2 MiB blocks that stay live:
// each block is large enough to be in the heap profile at the default rate.
//
//go:noinline
func allocateRetainedHeapSite() [][]byte {
	out := make([][]byte, 4)
	for i := range out {
		out[i] = make([]byte, 2<<20)
		out[i][0] = byte(i)
	}
	return out
}

// distinctiveParkedGoroutine waits for ctx: the thread dump must show it.
//
//go:noinline
func distinctiveParkedGoroutine(ctx context.Context) {
	<-ctx.Done()
}

// steadyChurnAllocator allocates 4 KiB of garbage every millisecond, keeping
// only the last four blocks.
//
//go:noinline
func steadyChurnAllocator(ctx context.Context) {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	var ring [4][]byte
	size := 4096
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ring[i%len(ring)] = make([]byte, size)
	}
}

// leakDuringWindow allocates 2000 blocks of 1 KiB that the caller keeps.
//
//go:noinline
func leakDuringWindow() [][]byte {
	out := make([][]byte, 2000)
	size := 1024
	for i := range out {
		out[i] = make([]byte, size)
	}
	return out
}

// busySpinCPUBurner spins for d, or until ctx ends.
//
//go:noinline
func busySpinCPUBurner(ctx context.Context, d time.Duration) uint64 {
	end := time.Now().Add(d)
	var x uint64
	for time.Now().Before(end) && ctx.Err() == nil {
		for i := 0; i < 100000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	return x
}
