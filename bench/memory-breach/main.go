//go:build linux

// Command memory-breach measures how fast the memory monitor reacts to a
// breach: it runs a supervisor with the memory monitor at default settings
// and a maximum_size_limit of 100 MiB, and a worker (this command, run
// again) that grows its private memory by 20 MiB/s. For each run it prints
// the time from the moment the worker's private size crossed the limit
// until the worker was gone, and the worker's peak private size; then the
// medians.
//
//	go run ./bench/memory-breach [-runs 5] [-limit 100] [-rate 20]
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/monitor"
	"github.com/vigild/vigil/supervisor"
)

const mib = 1 << 20

// workerEnv holds the socket path when this command runs as the worker.
const workerEnv = "VIGIL_BREACH_WORKER"

func main() {
	if sock := os.Getenv(workerEnv); sock != "" {
		if err := worker(sock); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		return
	}
	runs := flag.Int("runs", 5, "number of runs")
	limit := flag.Uint64("limit", 100, "maximum_size_limit, MiB")
	rate := flag.Int("rate", 20, "growth of the worker, MiB/s")
	verbose := flag.Bool("v", false, "print the monitor's log")
	flag.Parse()
	if *runs < 1 || *limit < 1 || *rate < 1 {
		fmt.Fprintln(os.Stderr, "memory-breach: -runs, -limit and -rate must be positive")
		os.Exit(2)
	}
	var reactions []time.Duration
	var peaks []uint64
	for i := range *runs {
		r, err := run(*limit*mib, *rate, *verbose)
		if err != nil {
			fmt.Fprintf(os.Stderr, "run %d: %v\n", i+1, err)
			os.Exit(1)
		}
		fmt.Printf("run %d: killed %v after crossing %d MiB (%s); peak private %.1f MiB (%.1f MiB over)\n",
			i+1, r.reaction.Round(time.Millisecond), *limit, r.signal, float64(r.peak)/mib, float64(int64(r.peak)-int64(*limit*mib))/mib)
		reactions = append(reactions, r.reaction)
		peaks = append(peaks, r.peak)
	}
	slices.Sort(reactions)
	slices.Sort(peaks)
	fmt.Printf("median over %d runs: crossing to killed %v, peak private %.1f MiB (%.1f MiB over the limit); worst: %v, %.1f MiB\n",
		*runs, reactions[len(reactions)/2].Round(time.Millisecond), float64(peaks[len(peaks)/2])/mib,
		float64(int64(peaks[len(peaks)/2])-int64(*limit*mib))/mib,
		reactions[len(reactions)-1].Round(time.Millisecond), float64(peaks[len(peaks)-1])/mib)
}

type result struct {
	reaction time.Duration
	peak     uint64
	signal   string
}

// run runs one supervisor and one growing worker until the worker is gone.
func run(limit uint64, rate int, verbose bool) (result, error) {
	dir, err := os.MkdirTemp("", "memory-breach")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.DiscardHandler)
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	sock := filepath.Join(dir, "supervisor.ipc")
	l, err := supervisor.Listen(sock, supervisor.ListenOptions{})
	if err != nil {
		return result{}, err
	}
	mem := monitor.NewMemory(monitor.MemoryOptions{MaximumSizeLimit: limit, Logger: logger})
	srv := &supervisor.Server{Monitors: []supervisor.Monitor{mem}, Logger: logger}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	defer func() {
		cancel()
		<-served
		l.Close()
	}()

	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), workerEnv+"="+sock, "VIGIL_BREACH_RATE="+strconv.Itoa(rate))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	killer := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer killer.Stop()

	// Each line: unix nanoseconds and private size after a step.
	var crossed time.Time
	var prevT time.Time
	var prevP, peak uint64
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		ns, err1 := strconv.ParseInt(f[0], 10, 64)
		p, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		t := time.Unix(0, ns)
		if p > limit && crossed.IsZero() {
			// Interpolate between the last report below and this one.
			crossed = t
			if !prevT.IsZero() && p > prevP && prevP <= limit {
				frac := float64(limit-prevP) / float64(p-prevP)
				crossed = prevT.Add(time.Duration(frac * float64(t.Sub(prevT))))
			}
		}
		prevT, prevP = t, p
		peak = max(peak, p)
	}
	werr := cmd.Wait()
	gone := time.Now()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	sig := "exited by itself"
	if ws.Signaled() {
		sig = ws.Signal().String()
	}
	if crossed.IsZero() {
		return result{}, fmt.Errorf("worker never crossed the limit (peak %d bytes, %v)", peak, werr)
	}
	if st := mem.Snapshot(); st.Kills[monitor.ReasonMaximumSize] != 1 {
		return result{}, fmt.Errorf("monitor kills %v, want one for %s (worker: %s)", st.Kills, monitor.ReasonMaximumSize, sig)
	}
	return result{reaction: gone.Sub(crossed), peak: peak, signal: sig}, nil
}

// worker registers, then grows its private memory at the rate asked, in
// 1 MiB steps, printing the time and its private size after each step, up
// to 1 GiB.
func worker(sock string) error {
	rate, _ := strconv.Atoi(os.Getenv("VIGIL_BREACH_RATE"))
	ctx := context.Background()
	c, err := supervisor.Dial(ctx, sock)
	if err != nil {
		return err
	}
	if _, err := c.Register(ctx, map[string]any{"process_id": os.Getpid(), "name": "breach"}); err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	step := time.Second / time.Duration(rate)
	var arena [][]byte
	next := time.Now()
	for range 1024 {
		next = next.Add(step)
		time.Sleep(time.Until(next))
		b, err := unix.Mmap(-1, 0, mib, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		arena = append(arena, b)
		runtime.KeepAlive(arena)
		p, err := privateSize()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%d %d\n", time.Now().UnixNano(), p)
		if err := w.Flush(); err != nil {
			return err
		}
	}
	<-c.Done()
	return nil
}

// privateSize reads this process's Private_Clean + Private_Dirty.
func privateSize() (uint64, error) {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return 0, err
	}
	var total uint64
	for line := range bytes.Lines(b) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok || (string(name) != "Private_Clean" && string(name) != "Private_Dirty") {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 {
			return 0, fmt.Errorf("smaps_rollup: line %q", line)
		}
		n, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("smaps_rollup: line %q", line)
		}
		total += n << 10
	}
	return total, nil
}
