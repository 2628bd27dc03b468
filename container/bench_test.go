//go:build linux

package container

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitCond waits, without polling, until cond holds on the container's
// state (checked on its loop after every change).
func waitCond(c *Container, timeout time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.wait(ctx, func() (bool, error) { return cond(), nil }) == nil
}

// BenchmarkCrashToReady: SIGKILL a worker until its replacement has said
// ready. Reports the median and p95.
func BenchmarkCrashToReady(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			c, err := NewContainer([]Spec{helperSpec("w", "ready", n)}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Start(); err != nil {
				b.Fatal(err)
			}
			defer c.Stop(context.Background())
			if err := c.WaitReady(context.Background()); err != nil {
				b.Fatal(err)
			}
			var inst *instance
			c.do(func() { inst = c.st.services[0].instances[0] })
			var lat []time.Duration
			b.ResetTimer()
			for range b.N {
				var p *proc
				c.do(func() { p = inst.cur })
				start := time.Now()
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
				if !waitCond(c, 10*time.Second, func() bool { return inst.cur != nil && inst.cur != p && inst.cur.ready }) {
					b.Fatal("no replacement")
				}
				lat = append(lat, time.Since(start))
				c.do(func() { inst.bo = backoff{} }) // measure the immediate restart each time
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}

// BenchmarkStart100: from Start to 100 workers ready.
func BenchmarkStart100(b *testing.B) {
	for range b.N {
		c, err := NewContainer([]Spec{helperSpec("w", "ready", 100)}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		if err := c.WaitReady(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms-to-ready")
		b.StopTimer()
		_ = c.Stop(context.Background())
		b.StartTimer()
	}
}

// BenchmarkIdle100 runs a controller process (the test binary re-executed)
// with 100 idle workers and measures it over IDLE_SECONDS (default 10):
// wake-ups (context switches of all its threads) per second, CPU time per
// minute, threads, and resident size.
func BenchmarkIdle100(b *testing.B) {
	secs := 10
	if v, err := strconv.Atoi(os.Getenv("IDLE_SECONDS")); err == nil {
		secs = v
	}
	for _, timeouts := range []bool{false, true} {
		b.Run(fmt.Sprintf("timeouts=%v", timeouts), func(b *testing.B) { benchIdle(b, secs, timeouts) })
	}
}

func benchIdle(b *testing.B, secs int, timeouts bool) {
	for range b.N {
		exe, _ := os.Executable()
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), helperEnv+"=idle-controller", "GORACE=atexit_sleep_ms=0", fmt.Sprintf("IDLE_TIMEOUTS=%v", timeouts))
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
			b.Fatal(err)
		}
		pid := cmd.Process.Pid
		time.Sleep(time.Second)
		sw0, cpu0 := switches(pid), cpuTicks(pid)
		time.Sleep(time.Duration(secs) * time.Second)
		sw1, cpu1 := switches(pid), cpuTicks(pid)
		th, rss := statusField(pid, "Threads:"), statusField(pid, "VmRSS:")
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		b.ReportMetric(float64(sw1-sw0)/float64(secs), "wakeups/s")
		b.ReportMetric(float64(cpu1-cpu0)*10/float64(secs)*60, "cpu-ms/min")
		b.ReportMetric(float64(th), "threads")
		b.ReportMetric(float64(rss)/1024, "rss-MiB")
	}
}

// helperIdleController runs a Controller with 100 ready workers until
// SIGTERM, printing a line once ready. With IDLE_TIMEOUTS=true the service
// has a (long) health-check timeout, so the clocks' ticker runs.
func helperIdleController([]string) int {
	s := helperSpec("w", "ready", 100)
	if os.Getenv("IDLE_TIMEOUTS") == "true" {
		s.HealthCheckTimeout = time.Hour
	}
	c, err := NewController([]Spec{s}, ControllerOptions{})
	if err != nil {
		return 5
	}
	ctx, stop := signalContext()
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	if err := c.WaitReady(context.Background()); err != nil {
		return 7
	}
	fmt.Println("ready")
	if err := <-errc; err != nil {
		return 8
	}
	return 0
}

func switches(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	n := 0
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "voluntary_ctxt_switches:") || strings.HasPrefix(line, "nonvoluntary_ctxt_switches:") {
				v, _ := strconv.Atoi(strings.TrimSpace(line[strings.IndexByte(line, ':')+1:]))
				n += v
			}
		}
	}
	return n
}

// cpuTicks is utime+stime in clock ticks (100 Hz).
func cpuTicks(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return u + st
}

func statusField(pid int, key string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}
