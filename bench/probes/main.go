//go:build linux

// Command probes measures the cost of package probe's Scheduler running
// many probes: by default 1,000 HTTP probes at a 1 s interval against 1,000
// real loopback listeners for 60 s, and prints the CPU this process used
// (getrusage, cross-checked with /proc/self/stat), its threads and its
// goroutines, how long attempts took and how regular their period was.
//
// The listeners live in child processes (this command re-executed, each
// serving its share of the ports with net/http, keep-alive on), so the
// figures are the probing side's alone; the servers' CPU is printed apart.
// This process does nothing else than run the scheduler and receive every
// result, as a controller's loop would.
//
//	go run ./bench/probes
//	go run ./bench/probes -probes 1000 -interval 1s -duration 60s -servers 4 -kind http
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigild/vigil/probe"
)

// serveEnv makes a re-executed copy of this command a server of that many
// ports.
const serveEnv = "VIGIL_BENCH_PROBES_SERVE"

type options struct {
	probes      int
	interval    time.Duration
	timeout     time.Duration
	duration    time.Duration
	warmup      time.Duration
	servers     int
	kind        string
	spread      bool
	changesOnly bool
	cpuProfile  string
	coalesce    time.Duration
}

func main() {
	if n := os.Getenv(serveEnv); n != "" {
		os.Exit(serve(n))
	}
	var o options
	flag.IntVar(&o.probes, "probes", 1000, "probes, each against a listener of its own")
	flag.DurationVar(&o.interval, "interval", time.Second, "the probes' interval")
	flag.DurationVar(&o.timeout, "timeout", time.Second, "the probes' timeout")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "measurement window")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "wait after the last probe is added before the window")
	flag.IntVar(&o.servers, "servers", 4, "child processes serving the listeners")
	flag.StringVar(&o.kind, "kind", "http", "probe kind: http or tcp")
	flag.BoolVar(&o.spread, "spread", false, "add the probes evenly over one interval rather than all at once")
	flag.BoolVar(&o.changesOnly, "changes-only", false, "Options.ChangesOnly: receive only changes of status")
	flag.DurationVar(&o.coalesce, "coalesce", 0, "Options.Coalesce (0: the default; negative: none)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the window to this file")
	flag.Parse()
	if o.probes < 1 || o.servers < 1 || o.interval <= 0 || o.duration <= 0 || o.timeout <= 0 || o.warmup < 0 ||
		(o.kind != "http" && o.kind != "tcp") {
		fmt.Fprintln(os.Stderr, "probes: -probes, -servers, -interval, -timeout and -duration must be positive, -warmup not negative, -kind http or tcp")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "probes:", err)
		os.Exit(1)
	}
}

// serve listens on n loopback ports, prints their addresses and "ready",
// and serves 200 "ok" on each until stdin closes.
func serve(n string) int {
	count, err := strconv.Atoi(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	}), ReadHeaderTimeout: time.Minute, IdleTimeout: 5 * time.Minute}
	out := bufio.NewWriter(os.Stdout)
	for range count {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go srv.Serve(ln)
		fmt.Fprintln(out, ln.Addr())
	}
	fmt.Fprintln(out, "ready")
	out.Flush()
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// server is one child process serving listeners.
type server struct {
	cmd   *exec.Cmd
	stdin io.Closer
	addrs []string
}

func startServers(ctx context.Context, self string, probes, n int) ([]*server, error) {
	var servers []*server
	for i := range n {
		share := probes/n + boolInt(i < probes%n)
		cmd := exec.CommandContext(ctx, self)
		cmd.Env = append(os.Environ(), serveEnv+"="+strconv.Itoa(share))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return servers, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return servers, err
		}
		if err := cmd.Start(); err != nil {
			return servers, err
		}
		s := &server{cmd: cmd, stdin: stdin}
		servers = append(servers, s)
		sc := bufio.NewScanner(out)
		for sc.Scan() && sc.Text() != "ready" {
			s.addrs = append(s.addrs, sc.Text())
		}
		if len(s.addrs) != share {
			return servers, fmt.Errorf("server %d gave %d addresses, want %d", i, len(s.addrs), share)
		}
	}
	return servers, nil
}

func stopServers(servers []*server) error {
	var errs []error
	for _, s := range servers {
		s.stdin.Close()
	}
	for _, s := range servers {
		if err := s.cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("server pid %d: %w", s.cmd.Process.Pid, err))
		}
	}
	return errors.Join(errs...)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func run(ctx context.Context, o options) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	servers, err := startServers(ctx, self, o.probes, o.servers)
	defer func() {
		if err := stopServers(servers); err != nil {
			fmt.Fprintln(os.Stderr, "probes:", err)
		}
	}()
	if err != nil {
		return err
	}
	var addrs []string
	for _, s := range servers {
		addrs = append(addrs, s.addrs...)
	}

	sched := probe.New(ctx, probe.Options{ChangesOnly: o.changesOnly, Coalesce: o.coalesce})
	defer sched.Close()
	rec := newRecorder(o.interval)
	received := make(chan struct{})
	go func() {
		defer close(received)
		for r := range sched.Results() {
			rec.add(r)
		}
	}()

	added := time.Now()
	for i, addr := range addrs {
		spec := probe.Spec{Interval: o.interval, Timeout: o.timeout}
		if o.kind == "http" {
			spec.HTTP = &probe.HTTP{URL: "http://" + addr + "/healthz"}
		} else {
			spec.TCP = &probe.TCP{Address: addr}
		}
		if _, err := sched.Add(spec); err != nil {
			return err
		}
		if o.spread {
			if err := sleepUntil(ctx, added.Add(o.interval*time.Duration(i+1)/time.Duration(len(addrs)))); err != nil {
				return err
			}
		}
	}
	if err := sleepUntil(ctx, time.Now().Add(o.warmup)); err != nil {
		return err
	}

	var serverPIDs []int
	for _, s := range servers {
		serverPIDs = append(serverPIDs, s.cmd.Process.Pid)
	}
	before, err := takeSelf(serverPIDs)
	if err != nil {
		return err
	}
	rec.window(before.at, before.at.Add(o.duration))
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	maxThreads, maxGoroutines := before.threads, before.goroutines
	tick := time.NewTicker(250 * time.Millisecond)
	end := time.NewTimer(o.duration)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			tick.Stop()
			return ctx.Err()
		case <-end.C:
			done = true
		case <-tick.C:
			maxThreads = max(maxThreads, threadCount())
			maxGoroutines = max(maxGoroutines, runtime.NumGoroutine())
		}
	}
	tick.Stop()
	after, err := takeSelf(serverPIDs)
	if err != nil {
		return err
	}
	sched.Close()
	<-received

	window := after.at.Sub(before.at)
	cpu := after.cpu - before.cpu
	fmt.Printf("machine: %d CPUs, load average %s (shared with other work)\n", runtime.NumCPU(), loadavg())
	how := "all at once"
	if o.spread {
		how = "evenly over one interval"
	}
	fmt.Printf("setup: %d %s probes, interval %v, timeout %v, added %s, against %d loopback listeners in %d child processes (net/http, keep-alive)\n",
		o.probes, o.kind, o.interval, o.timeout, how, len(addrs), len(servers))
	fmt.Println(rec.summary(window, o.changesOnly))
	perAttempt := "-"
	if rec.inWindow > 0 {
		perAttempt = fmt.Sprintf("%.1f µs", float64(cpu.Microseconds())/float64(rec.inWindow))
	}
	fmt.Printf("scheduling process CPU over %v: %v = %.2f%% of one core (user %v, system %v; /proc/self/stat says %d ticks of 10ms); %s per attempt\n",
		window.Round(time.Millisecond), cpu.Round(time.Millisecond), 100*cpu.Seconds()/window.Seconds(),
		(after.user - before.user).Round(time.Millisecond), (after.sys - before.sys).Round(time.Millisecond),
		after.ticks-before.ticks, perAttempt)
	fmt.Printf("scheduling process: threads %d (max %d sampled every 250ms), goroutines %d (max %d), wake-ups %.0f/s (context switches), RSS %.1f MiB\n",
		after.threads, maxThreads, after.goroutines, maxGoroutines,
		float64(after.switches-before.switches)/window.Seconds(), float64(after.rssKiB)/1024)
	serverCPU := time.Duration(after.serverTicks-before.serverTicks) * 10 * time.Millisecond
	fmt.Printf("servers (%d processes) CPU over the window: %v = %.2f%% of one core (10ms ticks)\n",
		len(servers), serverCPU, 100*serverCPU.Seconds()/window.Seconds())
	return nil
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// recorder is owned by the goroutine that receives results.
type recorder struct {
	interval         time.Duration
	from, to         time.Time
	set              chan [2]time.Time
	inWindow, failed int
	firstErr         error
	durations        []time.Duration
	deviations       []time.Duration // |gap - interval| between a probe's attempts
	last             map[probe.Handle]time.Time
}

func newRecorder(interval time.Duration) *recorder {
	return &recorder{interval: interval, set: make(chan [2]time.Time, 1), last: map[probe.Handle]time.Time{}}
}

// window sets the measurement window, from another goroutine.
func (r *recorder) window(from, to time.Time) { r.set <- [2]time.Time{from, to} }

func (r *recorder) add(res probe.Result) {
	select {
	case w := <-r.set:
		r.from, r.to = w[0], w[1]
	default:
	}
	prev, seen := r.last[res.Handle]
	r.last[res.Handle] = res.Time
	if r.from.IsZero() || res.Time.Before(r.from) || !res.Time.Before(r.to) {
		return
	}
	r.inWindow++
	if !res.Passed {
		r.failed++
		if r.firstErr == nil {
			r.firstErr = res.Err
		}
	}
	r.durations = append(r.durations, res.Duration)
	if seen {
		d := res.Time.Sub(prev) - r.interval
		r.deviations = append(r.deviations, max(d, -d))
	}
}

// summary is read after the receiving goroutine has ended.
func (r *recorder) summary(window time.Duration, changesOnly bool) string {
	var b strings.Builder
	if changesOnly {
		fmt.Fprintf(&b, "results received in the window: %d (changes of status only)", r.inWindow)
		return b.String()
	}
	fmt.Fprintf(&b, "attempts in the window: %d (%.1f/s), %d failed", r.inWindow, float64(r.inWindow)/window.Seconds(), r.failed)
	if r.firstErr != nil {
		fmt.Fprintf(&b, " (first: %v)", r.firstErr)
	}
	slices.Sort(r.durations)
	slices.Sort(r.deviations)
	fmt.Fprintf(&b, "\nattempt duration: median %v, p99 %v, max %v",
		pct(r.durations, 50), pct(r.durations, 99), pct(r.durations, 100))
	fmt.Fprintf(&b, "\nperiod of each probe, |gap - interval|: median %v, p99 %v, max %v",
		pct(r.deviations, 50), pct(r.deviations, 99), pct(r.deviations, 100))
	return b.String()
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)].Round(time.Microsecond)
}

// selfSample is this process's figures at one moment.
type selfSample struct {
	at                 time.Time
	cpu, user, sys     time.Duration // getrusage
	ticks, serverTicks int64         // /proc/PID/stat utime+stime
	switches           int64
	threads            int
	goroutines         int
	rssKiB             int64
}

func takeSelf(servers []int) (selfSample, error) {
	s := selfSample{at: time.Now(), goroutines: runtime.NumGoroutine()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, err
	}
	s.user, s.sys = time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
	s.cpu = s.user + s.sys
	s.switches = ru.Nvcsw + ru.Nivcsw
	var err error
	if s.ticks, err = statTicks("self"); err != nil {
		return s, err
	}
	for _, pid := range servers {
		t, err := statTicks(strconv.Itoa(pid))
		if err != nil {
			return s, err
		}
		s.serverTicks += t
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return s, err
	}
	s.threads = int(statusField(status, "Threads:"))
	s.rssKiB = statusField(status, "VmRSS:")
	return s, nil
}

// statTicks is utime+stime of /proc/PID/stat, in 10ms ticks.
func statTicks(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: no )", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%s/stat: %w", pid, err)
	}
	return ut + st, nil
}

func threadCount() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	return int(statusField(b, "Threads:"))
}

// statusField is the first number after name in /proc/PID/status.
func statusField(status []byte, name string) int64 {
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
