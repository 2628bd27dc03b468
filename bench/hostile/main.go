//go:build linux

// Command hostile measures the supervisor under hostile and careless
// clients: 5,000 connections, of which 4,990 are hostile (a third slow
// readers, a third holding partial lines, a third flooding status calls)
// and 10 are honest operators calling status in a loop, besides 10
// registered workers whose registrations status lists. It prints the
// honest calls' median and p99 latency beside the same 10 operators alone
// (the quiet figure), and the supervisor's peak resident memory.
//
//	go run ./bench/hostile                  # builds vigil
//	go run ./bench/hostile -vigil ./vigil -conns 5000 -honest 10 -for 20s
//
// The supervisor is `vigil supervise` with its default limits. The hostile
// clients run in a process of their own (this command re-executed), so
// that the honest operators' figures are not their scheduling:
//
//   - a slow reader sends 64 KiB of status calls at once and never reads;
//   - a partial line sends 2 KiB of a line, then a byte a second, and
//     connects again whenever the supervisor closes it;
//   - a flood writes status calls as fast as the supervisor takes them and
//     reads the replies slowly (8 KiB a second).
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// roleEnv makes this command the hostile clients' process.
const roleEnv = "VIGIL_BENCH_HOSTILE"

func main() {
	if os.Getenv(roleEnv) != "" {
		os.Exit(hostile(os.Args[1:]))
	}
	vigil := flag.String("vigil", "", "the vigil binary (default: build ./cmd/vigil)")
	conns := flag.Int("conns", 5000, "hostile and honest connections (the registered workers' are more)")
	honest := flag.Int("honest", 10, "honest operators calling status in a loop")
	workers := flag.Int("workers", 10, "registered workers (what status lists), besides -conns")
	quiet := flag.Duration("quiet", 10*time.Second, "how long the operators are measured alone")
	window := flag.Duration("for", 20*time.Second, "how long they are measured among the hostile clients")
	verbose := flag.Bool("v", false, "show the supervisor's log")
	cfg := flag.String("config", "", "a vigil.toml for the supervisor (its [supervisor] limits), instead of the defaults")
	flag.Parse()
	if *honest < 1 || *conns <= *honest {
		fmt.Fprintln(os.Stderr, "bench/hostile: want -honest at least 1 and -conns above it")
		os.Exit(2)
	}
	if err := run(*vigil, *cfg, *conns, *honest, *workers, *quiet, *window, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "bench/hostile:", err)
		os.Exit(1)
	}
}

func run(vigil, cfg string, conns, honest, workers int, quiet, window time.Duration, verbose bool) error {
	dir, err := os.MkdirTemp("", "vigil-bench-hostile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if vigil == "" {
		vigil = filepath.Join(dir, "vigil")
		build := exec.Command("go", "build", "-o", vigil, "github.com/vigild/vigil/cmd/vigil")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building vigil: %w", err)
		}
	}
	socket := filepath.Join(dir, "s.ipc")
	logPath := filepath.Join(dir, "supervisor.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := []string{"supervise", "--socket", socket}
	limits := "its default limits"
	if cfg != "" {
		args = append(args, "--config", cfg)
		limits = "the limits of " + cfg
	}
	sup := exec.Command(vigil, args...)
	sup.Stderr = logFile
	if verbose {
		sup.Stderr = io.MultiWriter(logFile, os.Stderr)
	}
	if err := sup.Start(); err != nil {
		return err
	}
	defer func() {
		sup.Process.Signal(syscall.SIGTERM)
		sup.Wait()
	}()
	pid := sup.Process.Pid

	ctx := context.Background()
	var clients []*supervisor.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	dial := func() (*supervisor.Client, error) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := supervisor.Dial(ctx, socket)
			if err == nil {
				clients = append(clients, c)
				return c, nil
			}
			if time.Now().After(deadline) {
				return nil, err
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i := range workers {
		c, err := dial()
		if err != nil {
			return err
		}
		if _, err := c.Register(ctx, map[string]any{"process_id": os.Getpid(), "name": "web", "instance": i}); err != nil {
			return err
		}
	}
	operators := make([]*supervisor.Client, honest)
	for i := range operators {
		if operators[i], err = dial(); err != nil {
			return err
		}
	}
	fmt.Printf("vigil supervise with %s, %d registered workers; %d honest operators calling status in a loop\n", limits, workers, honest)

	cpu0 := cpuTime(pid)
	quietCalls, quietFailed := measure(operators, quiet)
	cpu1 := cpuTime(pid)
	report("quiet", quietCalls, quietFailed, nil, quiet, cpu1-cpu0)

	// The hostile clients, in a process of their own.
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	n := conns - honest
	h := exec.Command(exe, socket, strconv.Itoa(n))
	h.Env = append(os.Environ(), roleEnv+"=1")
	h.Stderr = os.Stderr
	stdin, err := h.StdinPipe()
	if err != nil {
		return err
	}
	out, err := h.StdoutPipe()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := h.Start(); err != nil {
		return err
	}
	defer func() {
		stdin.Close()
		h.Wait()
	}()
	hout := bufio.NewReader(out)
	line, err := hout.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		return fmt.Errorf("hostile clients: %q %v", line, err)
	}
	fmt.Printf("%d hostile connections open in %v (%s)\n", n, time.Since(start).Round(time.Millisecond), strings.TrimSpace(strings.TrimPrefix(line, "ready:")))
	time.Sleep(2 * time.Second)

	var peakRSS atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			peakRSS.Store(max(peakRSS.Load(), rss(pid, "VmRSS:")))
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	cpu2 := cpuTime(pid)
	calls, failed := measure(operators, window)
	cpu3 := cpuTime(pid)
	close(stop)
	sampler.Wait()
	report("hostile", calls, failed, quietCalls, window, cpu3-cpu2)
	fmt.Printf("supervisor memory: peak RSS %.1f MiB sampled during the hostile window, VmHWM %.1f MiB over its life; %d threads\n",
		float64(peakRSS.Load())/(1<<20), float64(rss(pid, "VmHWM:"))/(1<<20), rss(pid, "Threads:"))

	stdin.Close()
	rest, _ := io.ReadAll(hout)
	if s := strings.TrimSpace(string(rest)); s != "" {
		fmt.Println("hostile clients:", s)
	}
	h.Wait()
	if b, err := os.ReadFile(logPath); err == nil {
		fmt.Printf("supervisor log: %d lines, %d of them closing connections for a partial line, %d of a connection limit\n",
			bytes.Count(b, []byte("\n")), bytes.Count(b, []byte("not completed within")), bytes.Count(b, []byte("connection limit")))
	}
	return nil
}

// measure has each operator call status back to back for d, and returns
// every call's latency and the number that failed.
func measure(operators []*supervisor.Client, d time.Duration) ([]time.Duration, int) {
	var (
		mu     sync.Mutex
		all    []time.Duration
		failed int
		wg     sync.WaitGroup
	)
	end := time.Now().Add(d)
	for _, c := range operators {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for time.Now().Before(end) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				t := time.Now()
				_, err := c.Conn().Call(ctx, "status", nil, func(*rpc.Message) error { return nil })
				cancel()
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			all = append(all, mine...)
			failed += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all)
	return all, failed
}

func report(phase string, calls []time.Duration, failed int, quiet []time.Duration, d time.Duration, cpu time.Duration) {
	if len(calls) == 0 {
		fmt.Printf("%-7s no call answered (%d failed)\n", phase, failed)
		return
	}
	line := fmt.Sprintf("%-7s %7d calls (%d failed): median %v, p99 %v", phase, len(calls), failed,
		pct(calls, 50), pct(calls, 99))
	if quiet != nil {
		line += fmt.Sprintf(" (median %.1f×, p99 %.1f× the quiet figures)",
			float64(pct(calls, 50))/float64(pct(quiet, 50)), float64(pct(calls, 99))/float64(pct(quiet, 99)))
	}
	fmt.Printf("%s; supervisor CPU %.0f%% of one core\n", line, 100*cpu.Seconds()/d.Seconds())
}

// pct returns the p-th percentile of sorted durations.
func pct(t []time.Duration, p int) time.Duration {
	i := (len(t)*p + 99) / 100
	return t[max(min(i, len(t))-1, 0)].Round(time.Microsecond)
}

// rss returns a field of /proc/PID/status in bytes (kB fields) or as is.
func rss(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			f := strings.Fields(l)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			if len(f) > 2 && f[2] == "kB" {
				n <<= 10
			}
			return n
		}
	}
	return 0
}

// cpuTime returns a process's user and system time.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// hostile plays the hostile clients (arguments SOCKET N) until its stdin
// closes: it prints "ready" once all N are connected.
func hostile(args []string) int {
	socket := args[0]
	n, _ := strconv.Atoi(args[1])
	var (
		wg       sync.WaitGroup
		closed   atomic.Int64 // partial-line connections the supervisor closed
		refused  atomic.Int64 // connections that could not be made
		conns    sync.Map
		opened   sync.WaitGroup
		stopping = make(chan struct{})
	)
	slow := bytes.Repeat([]byte(`{"id":2,"do":"status"}`+"\n"), 64<<10/23)
	chunk := bytes.Repeat([]byte(`{"id":2,"do":"status"}`+"\n"), 4<<10/23)
	partial := append([]byte(`{"id":2,"do":"status","pad":"`), bytes.Repeat([]byte("x"), 2<<10)...)
	dial := func() (net.Conn, error) {
		var c net.Conn
		var err error
		for range 100 {
			if c, err = net.Dial("unix", socket); err == nil {
				conns.Store(c, true)
				return c, nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		refused.Add(1)
		return nil, err
	}
	gate := make(chan struct{}, 64) // dials at once
	for i := range n {
		opened.Add(1)
		wg.Go(func() {
			gate <- struct{}{}
			c, err := dial()
			<-gate
			if err != nil {
				opened.Done()
				return
			}
			switch i % 3 {
			case 0: // slow reader
				opened.Done()
				c.Write(slow) // blocks once the supervisor stops reading; never reads
			case 1: // partial line, again and again
				first := true
				for {
					_, err := c.Write(partial)
					if first {
						opened.Done()
						first = false
					}
					for err == nil {
						select {
						case <-stopping:
							return
						case <-time.After(time.Second):
						}
						_, err = c.Write([]byte("x"))
					}
					closed.Add(1)
					c.Close()
					conns.Delete(c)
					select {
					case <-stopping:
						return
					default:
					}
					if c, err = dial(); err != nil {
						return
					}
				}
			case 2: // flood, read slowly
				opened.Done()
				go func() {
					for {
						if _, err := c.Write(chunk); err != nil {
							return
						}
					}
				}()
				buf := make([]byte, 4<<10)
				for {
					select {
					case <-stopping:
						return
					case <-time.After(500 * time.Millisecond):
					}
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}
		})
	}
	opened.Wait()
	fmt.Printf("ready: %d slow readers, %d partial lines, %d floods; %d could not connect\n", (n+2)/3, (n+1)/3, n/3, refused.Load())
	io.Copy(io.Discard, os.Stdin)
	close(stopping)
	conns.Range(func(k, _ any) bool {
		k.(net.Conn).Close()
		return true
	})
	wg.Wait()
	fmt.Printf("%d partial-line connections closed by the supervisor (and made again)\n", closed.Load())
	return 0
}
