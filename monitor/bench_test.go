package monitor

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// benchMemory tracks n idle `sleep` children under the default options
// with a maximum size limit none of them is near: the steady state.
func benchMemory(b *testing.B, n int) *Memory {
	m := NewMemory(MemoryOptions{MaximumSizeLimit: 1 << 30, TotalSizeLimit: 100 << 30})
	for range n {
		cmd := startSleep(b)
		m.procs[cmd.Process.Pid] = &tracked{pid: cmd.Process.Pid, conns: nilConns, limits: m.limitsFor("")}
	}
	return m
}

// BenchmarkMemoryPoll100 is one poll of 100 workers (every PollInterval,
// 1s by default): ns/op over 1s is the poll's share of a core.
func BenchmarkMemoryPoll100(b *testing.B) {
	m := benchMemory(b, 100)
	ctx := context.Background()
	for b.Loop() {
		if err := m.check(ctx, checkPoll); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryFull100 is one full check of 100 workers (every
// Interval, 10s by default): ns/op over 10s is its share of a core.
func BenchmarkMemoryFull100(b *testing.B) {
	m := benchMemory(b, 100)
	ctx := context.Background()
	for b.Loop() {
		if err := m.check(ctx, checkFull); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryStatus100 is one status of 100 tracked workers.
func BenchmarkMemoryStatus100(b *testing.B) {
	m := benchMemory(b, 100)
	if err := m.check(context.Background(), checkFull); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.Status(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemorySteadyCPU100 runs the real loop with default options over
// 100 idle workers for 10 s (one full check, ten polls) and reports the
// processor time this process used, as a percentage of one core.
func BenchmarkMemorySteadyCPU100(b *testing.B) { steadyCPU(b, 100) }

// BenchmarkMemorySteadyCPU0 is the same loop without workers: the floor
// (the Go runtime's own and the loop's wakes).
func BenchmarkMemorySteadyCPU0(b *testing.B) { steadyCPU(b, 0) }

func steadyCPU(b *testing.B, n int) {
	m := benchMemory(b, n)
	for b.Loop() {
		var before, after syscall.Rusage
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		start := time.Now()
		go func() { done <- m.Run(ctx) }()
		time.Sleep(10 * time.Second)
		cancel()
		<-done
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		wall := time.Since(start)
		cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%core")
	}
}
