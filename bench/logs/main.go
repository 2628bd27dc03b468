//go:build linux

// Command logs measures the capture of children's output by package logs,
// with real child processes (./writer) writing into real pipes that a
// logs.Hub reads and writes to rotated files:
//
//   - one child writing 100-byte lines as fast as it can for -duration,
//     one write(2) per line, then again with the lines gathered into 8 KiB
//     writes as stdio does on a pipe: the lines a second that reach the
//     file, the lines dropped, the capture's CPU per million lines (this
//     process's user and system time: it does nothing but the capture and
//     starting the children, whose cost in cmd.Start is also shown on its
//     own, and beside it the kernel's least cost of the same bytes: written
//     to a file in 256 KiB writes, and read from a pipe in reads of the
//     capture's size while hot in the cache; a capture that gathers reads
//     finds them cold, which costs several times as much), and the child's
//     write latency, which shows whether it ever waited;
//   - -children children writing -rate lines a second each, one write per
//     line: the same figures.
//
// The files go to -dir (default: a temporary directory), rotated at 4 GiB
// (so no line is rotated away before it is counted) and removed after each
// measurement: one child at a million lines a second writes 1 GB in 10 s.
//
//	go run ./bench/logs
//	go run ./bench/logs -duration 10s -children 100 -rate 1000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigild/vigil/logs"
	"golang.org/x/sys/unix"
)

type options struct {
	writer   string
	dir      string
	duration time.Duration
	children int
	rate     int
	size     int
	only     string
	delay    time.Duration
	profile  string // CPU profile of the capture's window, per load
}

func main() {
	var o options
	flag.StringVar(&o.writer, "writer", "", "the writer binary (default: build ./bench/logs/writer)")
	flag.StringVar(&o.dir, "dir", "", "where the log files go (default: a temporary directory, removed after)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long each child writes")
	flag.IntVar(&o.children, "children", 100, "children of the many-children run")
	flag.IntVar(&o.rate, "rate", 1000, "lines a second of each child of the many-children run")
	flag.IntVar(&o.size, "size", 100, "bytes per line, newline included")
	flag.StringVar(&o.only, "only", "", "run only one measurement: one, buffered or many")
	flag.DurationVar(&o.delay, "read-delay", 0, "logs.Options.ReadDelay: the longest wait between two reads of a pipe (0: the package's choice; negative: none)")
	flag.StringVar(&o.profile, "cpuprofile", "", "write the CPU profile of each load's capture (from its children's start to the capture's close; not the floors) to the file, suffixed -LOAD when several run")
	reports := flag.String("reports", "", "only sum up the writers' reports matching this pattern (for compare.sh) and exit")
	flag.Parse()
	if *reports != "" {
		if err := summarize(*reports); err != nil {
			fmt.Fprintln(os.Stderr, "bench/logs:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/logs:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	tmp, err := os.MkdirTemp("", "bench-logs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.writer == "" {
		o.writer = filepath.Join(tmp, "writer")
		build := exec.Command("go", "build", "-o", o.writer, "./bench/logs/writer")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build the writer (run from the repository's root): %w", err)
		}
	}
	if o.dir == "" {
		o.dir = filepath.Join(tmp, "logs")
	}
	fmt.Printf("bench/logs: %d-byte lines, %v per child, files in %s\n", o.size, o.duration, o.dir)
	type scenario struct {
		name, title string
		children    int
		args        []string
		readSize    int // the capture's reads, about: for the read floor
		writeSize   int // the capture's writes of one file, about: for the write floor
	}
	scenarios := []scenario{
		{"one", "one child, one write(2) per line, as fast as it can", 1, nil, 256 << 10, 256 << 10},
		{"buffered", "one child, lines gathered in 8 KiB writes (stdio on a pipe), as fast as it can", 1, []string{"-buffer", "8192"}, 256 << 10, 256 << 10},
		// A steady child is read every 100 ms (logs' maxReadDelay), and its
		// file written every 200 ms (logs' fileGather).
		{"many", fmt.Sprintf("%d children, %d lines/s each, one write per line", o.children, o.rate), o.children, []string{"-rate", fmt.Sprint(o.rate)},
			max(o.rate*o.size/10, o.size), max(o.rate*o.size/5, o.size)},
	}
	for _, s := range scenarios {
		if o.only != "" && o.only != s.name {
			continue
		}
		dir := filepath.Join(o.dir, s.name)
		profile := o.profile
		if profile != "" && o.only == "" {
			profile += "-" + s.name
		}
		r, err := measure(o, dir, s.children, s.args, profile)
		if err == nil {
			r.readSize, r.writeSize, r.files = s.readSize, s.writeSize, s.children
			r.readFloor, err = readFloor(int64(r.read)*int64(o.size), o.size, s.readSize)
		}
		if err == nil {
			r.floor, err = writeFloor(dir, int64(r.inFiles)*int64(o.size), s.children, s.writeSize)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Printf("\n%s\n", s.title)
		r.print()
		os.RemoveAll(dir)
	}
	return nil
}

// report is what a writer child says about itself.
type report struct {
	Lines   uint64  `json:"lines"`
	Writes  uint64  `json:"writes"`
	Seconds float64 `json:"seconds"`
	P50     float64 `json:"p50_us"`
	P99     float64 `json:"p99_us"`
	P999    float64 `json:"p999_us"`
	Max     float64 `json:"max_us"`
	Over1ms uint64  `json:"over_1ms"`
	Full    uint64  `json:"full_pipe"`
	Waited  float64 `json:"waited_us"`
}

type result struct {
	children           int
	written, read      uint64 // by the children; by the capture
	inFiles, dropped   uint64
	seconds            float64 // the children's writing time (the longest)
	cpu                time.Duration
	p50, p99, p999, mx float64 // the worst child's
	over1ms            uint64
	full               uint64  // writes that found the pipe full
	waited             float64 // µs the children waited on full pipes
	floor              time.Duration
	readFloor          time.Duration // reading the same bytes from a pipe
	readSize           int           // in reads of this size
	writeSize, files   int           // the write floor's writes, to this many files
	start              time.Duration // starting the children
}

func (r result) print() {
	fmt.Printf("  lines written by the children  %12d  (%.0f lines/s)\n", r.written, float64(r.written)/r.seconds)
	fmt.Printf("  lines that reached the files   %12d  (%.0f lines/s)\n", r.inFiles, float64(r.inFiles)/r.seconds)
	fmt.Printf("  lines dropped                  %12d\n", r.dropped)
	fmt.Printf("  capture CPU                    %12v  (%.3f s per million lines, %.2f s per 10 million)\n",
		r.cpu.Round(time.Millisecond), r.cpu.Seconds()/float64(r.read)*1e6, r.cpu.Seconds()/float64(r.read)*1e7)
	fmt.Printf("    of which writing the files   %12v  (the same bytes written to %d new file(s) in the same directory, in %d KiB writes taking the files in turn: the kernel's cost)\n",
		r.floor.Round(time.Millisecond), r.files, r.writeSize>>10)
	fmt.Printf("    of which reading the pipes   %12v  (the same bytes, written a line at a time, read from a pipe in %d KiB reads while hot in the cache: the kernel's least cost)\n",
		r.readFloor.Round(time.Millisecond), r.readSize>>10)
	fmt.Printf("    of which starting the children %10v  (fork and exec, in cmd.Start: not the capture's)\n",
		r.start.Round(time.Millisecond))
	rest := r.cpu - r.floor - r.readFloor - r.start
	fmt.Printf("    the rest: capture            %12v  (%.3f s per million lines, %.2f s per 10 million)\n",
		rest.Round(time.Millisecond), rest.Seconds()/float64(r.read)*1e6, rest.Seconds()/float64(r.read)*1e7)
	fmt.Printf("  child's write latency, worst child: p50 %.1f µs, p99 %.1f µs, p99.9 %.1f µs, max %.0f µs; writes over 1 ms: %d\n",
		r.p50, r.p99, r.p999, r.mx, r.over1ms)
	fmt.Printf("  writes that found the pipe full (waited on vigil): %d, %.1f ms in all\n", r.full, r.waited/1e3)
}

func measure(o options, dir string, children int, args []string, profile string) (result, error) {
	res := result{children: children}
	stopProfile := func() {}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return res, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return res, err
		}
		stopProfile = sync.OnceFunc(func() { pprof.StopCPUProfile(); f.Close() })
		defer stopProfile()
	}
	h := logs.New(logs.Options{Settings: logs.Settings{Dir: dir, MaxSize: 4 << 30, Keep: 1, RingLines: 1000}, ReadDelay: o.delay,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	type child struct {
		cmd     *exec.Cmd
		capture *logs.Capture
		report  string
	}
	var kids []child
	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	// Starting the children is vigil's cost, not the capture's: it is
	// measured on its own (RUSAGE_THREAD, this goroutine's thread only).
	runtime.LockOSThread()
	for i := range children {
		outR, outW, err := os.Pipe()
		if err != nil {
			runtime.UnlockOSThread()
			return res, err
		}
		rep := filepath.Join(os.TempDir(), fmt.Sprintf("bench-logs-report-%d-%d.json", os.Getpid(), i))
		cmd := exec.Command(o.writer, append([]string{"-size", fmt.Sprint(o.size), "-duration", o.duration.String(), "-report", rep}, args...)...)
		cmd.Stdout, cmd.Stderr = outW, os.Stderr
		var t0, t1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_THREAD, &t0)
		err = cmd.Start()
		syscall.Getrusage(syscall.RUSAGE_THREAD, &t1)
		res.start += time.Duration(t1.Utime.Nano() + t1.Stime.Nano() - t0.Utime.Nano() - t0.Stime.Nano())
		if err != nil {
			runtime.UnlockOSThread()
			outW.Close()
			outR.Close()
			return res, err
		}
		outW.Close()
		c := h.Capture(logs.Identity{Service: "bench", Instance: i, PID: cmd.Process.Pid}, outR, nil)
		kids = append(kids, child{cmd, c, rep})
	}
	runtime.UnlockOSThread()
	var errs []error
	for _, k := range kids {
		if err := k.cmd.Wait(); err != nil {
			errs = append(errs, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := k.capture.Wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("capture: %w", err))
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	err := h.Close(ctx)
	cancel()
	var after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	stopProfile()
	if err != nil {
		errs = append(errs, err)
	}
	res.cpu = time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	for _, k := range kids {
		st := k.capture.Stats()
		res.read += st.Lines
		res.dropped += st.Dropped()
		b, err := os.ReadFile(k.report)
		os.Remove(k.report)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			errs = append(errs, err)
			continue
		}
		res.written += r.Lines
		res.seconds = max(res.seconds, r.Seconds)
		res.p50, res.p99, res.p999, res.mx = max(res.p50, r.P50), max(res.p99, r.P99), max(res.p999, r.P999), max(res.mx, r.Max)
		res.over1ms += r.Over1ms
		res.full += r.Full
		res.waited += r.Waited
	}
	// Lines in the files: every line has the same size.
	entries, err := os.ReadDir(dir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if !strings.Contains(e.Name(), ".log") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			res.inFiles += uint64(fi.Size()) / uint64(o.size)
		}
	}
	return res, errors.Join(errs...)
}

// writeFloor is the CPU time of writing n bytes to files new files in
// dir, in writes of chunk bytes taking the files in turn (as the capture's
// writer writes a hundred children's files, each every 200 ms): what the
// kernel charges for the files, whoever writes.
func writeFloor(dir string, n int64, files, chunk int) (time.Duration, error) {
	fs := make([]*os.File, max(files, 1))
	for i := range fs {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("floor.%d", i)))
		if err != nil {
			return 0, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		fs[i] = f
	}
	buf := make([]byte, max(chunk, 1))
	for i := range buf {
		buf[i] = 'x'
	}
	// The capture's files written back first (not counted): the floor
	// starts as the capture did, not behind its dirty pages.
	syscall.Sync()
	runtime.LockOSThread() // RUSAGE_THREAD: this goroutine's thread only
	defer runtime.UnlockOSThread()
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_THREAD, &before)
	for i := 0; n > 0; i++ {
		k, err := fs[i%len(fs)].Write(buf[:min(int64(len(buf)), n)])
		if err != nil {
			return 0, err
		}
		n -= int64(k)
	}
	syscall.Getrusage(syscall.RUSAGE_THREAD, &after)
	return time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()), nil
}

// readFloor is the CPU time of reading n bytes from a 1 MiB pipe, written
// into it a line of size bytes at a time by another thread, in reads of
// readSize bytes (each made when the pipe holds that much): what the
// kernel charges the reader of the pipes, whoever reads. Only the read
// calls are counted (the thread's CPU clock around each, less its own
// cost).
func readFloor(n int64, size, readSize int) (time.Duration, error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return 0, err
	}
	defer syscall.Close(p[0])
	if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, 1<<20); err != nil {
		syscall.Close(p[1])
		return 0, err
	}
	readSize = max(min(readSize, 1<<20)/size*size, size) // a read waits for the pipe to hold it
	turn := make(chan int, 1)                            // bytes written, for the reader to take
	back := make(chan struct{}, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer syscall.Close(p[1])
		defer close(turn)
		line := make([]byte, size)
		line[size-1] = '\n'
		for left := n; left > 0; {
			k := 0
			for ; k < readSize && left > 0; k += size {
				if _, err := syscall.Write(p[1], line); err != nil {
					return
				}
				left -= int64(size)
			}
			turn <- k
			if _, ok := <-back; !ok {
				return // the reader gave up
			}
		}
	}()
	defer close(back)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := func() time.Duration { // getrusage counts in ticks: too coarse here
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
		return time.Duration(ts.Nano())
	}
	// The clock's own cost, once per read.
	t0 := cpu()
	for range 1000 {
		cpu()
	}
	probe := (cpu() - t0) / 1000
	buf := make([]byte, readSize)
	var total time.Duration
	for k := range turn {
		t := cpu()
		for got := 0; got < k; {
			m, err := syscall.Read(p[0], buf[got:k])
			if err != nil || m == 0 {
				return 0, fmt.Errorf("read floor: %d of %d bytes: %v", got, k, err)
			}
			got += m
		}
		total += cpu() - t - probe
		back <- struct{}{}
	}
	return max(total, 0), nil
}

// summarize prints the sum of the writers' reports matching pattern: what
// compare.sh shows for pm2 and supervisord.
func summarize(pattern string) error {
	names, err := filepath.Glob(pattern)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("no report matches %s", pattern)
	}
	var res result
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		res.written += r.Lines
		res.seconds = max(res.seconds, r.Seconds)
		res.p50, res.p99, res.p999, res.mx = max(res.p50, r.P50), max(res.p99, r.P99), max(res.p999, r.P999), max(res.mx, r.Max)
		res.over1ms += r.Over1ms
		res.full += r.Full
		res.waited += r.Waited
	}
	fmt.Printf("  lines written by the children  %12d  (%.0f lines/s)\n", res.written, float64(res.written)/res.seconds)
	fmt.Printf("  child's write latency, worst child: p50 %.1f µs, p99 %.1f µs, p99.9 %.1f µs, max %.0f µs; writes over 1 ms: %d\n",
		res.p50, res.p99, res.p999, res.mx, res.over1ms)
	fmt.Printf("  writes that found the pipe full (waited on the supervisor): %d, %.1f ms in all\n", res.full, res.waited/1e3)
	return nil
}
