package supervisor

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

func init() {
	// idle N SOCKET: opens N connections, registers each, prints "ready",
	// and holds them (without a goroutine each) until stdin closes.
	helpers["idle"] = func(args []string) int {
		n, _ := strconv.Atoi(args[0])
		conns := make([]net.Conn, 0, n)
		buf := make([]byte, 4096)
		for i := range n {
			c, err := net.Dial("unix", args[1])
			if err != nil {
				fmt.Println("dial:", err)
				return 1
			}
			fmt.Fprintf(c, `{"id":2,"do":"register","state":{"process_id":%d,"name":"idle","instance":%d}}`+"\n", os.Getpid(), i)
			if _, err := c.Read(buf); err != nil {
				fmt.Println("register:", err)
				return 1
			}
			conns = append(conns, c)
		}
		fmt.Println("ready")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		for _, c := range conns {
			c.Close()
		}
		return 0
	}
}

// reportMedian reports the median of per-operation durations.
func reportMedian(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds())/1e3, "µs-median")
	b.ReportMetric(float64(d[len(d)*95/100].Nanoseconds())/1e3, "µs-p95")
}

// BenchmarkForward measures a forward round trip over real Unix sockets:
// client to supervisor to worker and back. Aim: median at most 50 µs (the
// original: about 0.5 ms).
func BenchmarkForward(b *testing.B) {
	ts := startServer(b, &Server{}, ListenOptions{})
	_, id := register(b, ts.path, map[string]any{"process_id": 1})
	client := dial(b, ts.path, nil)
	ctx := ctxT(b)
	op := map[string]any{"do": "echo", "value": 1}
	durations := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := client.Forward(ctx, id, op, nil); err != nil {
			b.Fatal(err)
		}
		if len(durations) < cap(durations) {
			durations = append(durations, time.Since(start))
		}
	}
	reportMedian(b, durations)
}

// BenchmarkStatus measures a status call with 100 and 1,000 registered
// connections, held by another process. Aim: at most 0.3 ms at 100 and
// 5 ms at 1,000 (the original: about 0.8 ms at 100).
func BenchmarkStatus(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ts := startServer(b, &Server{}, ListenOptions{})
			holdIdle(b, ts, n)
			client := dial(b, ts.path, nil)
			ctx := ctxT(b)
			durations := make([]time.Duration, 0, 1<<14)
			for b.Loop() {
				start := time.Now()
				st, err := client.Status(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if len(st.Connections) != n {
					b.Fatalf("%d connections, want %d", len(st.Connections), n)
				}
				if len(durations) < cap(durations) {
					durations = append(durations, time.Since(start))
				}
			}
			reportMedian(b, durations)
		})
	}
}

// holdIdle has a helper process open and register n connections.
func holdIdle(b *testing.B, ts *testServer, n int) {
	b.Helper()
	cmd := helperCmd(b, "idle", strconv.Itoa(n), ts.path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close() })
	_, out := startHelper(b, cmd)
	if got := readLine(b, out); got != "ready" {
		b.Fatalf("idle helper: %s", got)
	}
	waitFor(b, "registrations", func() bool { return len(ts.Connections()) == n })
}

// BenchmarkIdleConnectionMemory measures the supervisor's memory per idle
// registered connection (live heap and goroutine stacks), with 10,000 of
// them held by another process, once they are parked (no goroutine each),
// measured once whatever the benchtime. Aim: at most 8 KiB each (the
// original: about 350 KB per worker).
func BenchmarkIdleConnectionMemory(b *testing.B) {
	const n = 10000
	ts := startServer(b, &Server{ParkAfter: 100 * time.Millisecond}, ListenOptions{})
	before, stacks := liveMemory()
	goroutines := runtime.NumGoroutine()
	holdIdle(b, ts, n)
	waitFor(b, "the idle connections parked", func() bool { return runtime.NumGoroutine() < goroutines+n/100 })
	after, stacksAfter := liveMemory()
	for b.Loop() {
	}
	b.ReportMetric((float64(after)-float64(before))/n/1024, "KiB/conn")
	b.ReportMetric((float64(stacksAfter)-float64(stacks))/n/1024, "stack-KiB/conn")
	b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/conn")
}

// liveMemory is the heap in use plus goroutine stacks, after a GC, and
// the stacks alone.
func liveMemory() (all, stacks uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse, m.StackInuse
}
