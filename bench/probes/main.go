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
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
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
	concurrent  int
	floor       bool
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
	flag.IntVar(&o.concurrent, "max-concurrent", 0, "Options.MaxConcurrent (0: the default)")
	flag.BoolVar(&o.floor, "floor", false, "measure the floor instead: the same round trips without package probe (http only; -spread batches every -coalesce, default 100ms)")
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
	var serverPIDs []int
	for _, s := range servers {
		addrs = append(addrs, s.addrs...)
		serverPIDs = append(serverPIDs, s.cmd.Process.Pid)
	}
	if o.floor {
		if o.coalesce <= 0 {
			o.coalesce = probe.DefaultCoalesce
		}
		fmt.Printf("machine: %d CPUs, load average %s (shared with other work)\n", runtime.NumCPU(), loadavg())
		return floor(ctx, addrs, o, serverPIDs)
	}

	sched := probe.New(ctx, probe.Options{ChangesOnly: o.changesOnly, Coalesce: o.coalesce, MaxConcurrent: o.concurrent})
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
		defer pprof.StopCPUProfile() // on an early return
	}
	maxThreads, maxGoroutines := before.threads, before.goroutines
	tick := time.NewTicker(time.Second)
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
	pprof.StopCPUProfile()
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
	fmt.Printf("scheduling process: threads %d (max %d, sampled every second), goroutines %d (max %d), wake-ups %.0f/s (context switches), RSS %.1f MiB\n",
		after.threads, maxThreads, after.goroutines, maxGoroutines,
		float64(after.switches-before.switches)/window.Seconds(), float64(after.rssKiB)/1024)
	serverCPU := time.Duration(after.serverTicks-before.serverTicks) * 10 * time.Millisecond
	fmt.Printf("servers (%d processes) CPU over the window: %v = %.2f%% of one core (10ms ticks)\n",
		len(servers), serverCPU, 100*serverCPU.Seconds()/window.Seconds())
	switch {
	case rec.failed > 0:
		return fmt.Errorf("%d of %d attempts failed (first: %w): the figures are not those of healthy probes", rec.failed, rec.inWindow, rec.firstErr)
	case rec.inWindow == 0 && !o.changesOnly:
		return errors.New("no attempt in the window")
	}
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
