//go:build unix

package worker_test

import (
	"context"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/worker"
	"github.com/vigild/vigil/worker/workertest"
)

// parkGoroutines starts n goroutines blocked until the returned function is
// called (which waits for them).
func parkGoroutines(n int) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { <-stop })
	}
	return func() { close(stop); wg.Wait() }
}

// BenchmarkThreadDump10000Goroutines measures a thread_dump, through a real
// Unix socket from a fake supervisor, of a process with 10,000 goroutines.
func BenchmarkThreadDump10000Goroutines(b *testing.B) {
	release := parkGoroutines(10000)
	defer release()
	sup := workertest.New(b)
	w, err := worker.Start(context.Background(), worker.Options{Socket: sup.Path})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	ctx := context.Background()
	reg, err := sup.WaitRegistration(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var size int
	for b.Loop() {
		reply, err := sup.Call(ctx, reg.ConnectionID, "thread_dump", nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		size = len(reply.Bytes())
	}
	b.ReportMetric(float64(size), "reply-bytes")
}

// BenchmarkIdleConnected measures what being connected costs a worker that
// is idle: the live heap the connection adds, and the CPU time the process
// spends per second of idleness (rusage, so it includes the fake
// supervisor's side, idle too). The "baseline" case is the same process with
// no worker, to tell the worker's cost from the benchmark's own noise.
func BenchmarkIdleConnected(b *testing.B) {
	for _, connect := range []bool{false, true} {
		name := "baseline"
		if connect {
			name = "connected"
		}
		b.Run(name, func(b *testing.B) {
			sup := workertest.New(b)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if connect {
				w, err := worker.Start(context.Background(), worker.Options{Socket: sup.Path})
				if err != nil {
					b.Fatal(err)
				}
				defer w.Stop()
				if _, err := sup.WaitRegistration(context.Background(), nil); err != nil {
					b.Fatal(err)
				}
				for w.ConnectionID() == "" {
					time.Sleep(time.Millisecond)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			cpu0 := cpuTime()
			start := time.Now()
			b.ResetTimer()
			for range b.N {
				time.Sleep(100 * time.Millisecond)
			}
			b.StopTimer()
			elapsed := time.Since(start)
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)), "heap-bytes")
			b.ReportMetric(float64(cpuTime()-cpu0)/elapsed.Seconds()/1e3, "cpu-µs/s")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
