//go:build linux

// Command controller measures `vigil run`, the controller, end to end with
// the real binary and a small idle Go worker (./idleworker, which says
// {"ready":true} on fd 3 and blocks):
//
//   - start-up: from starting `vigil run` to its READY=1 on NOTIFY_SOCKET
//     (a unixgram socket this command listens on), with N workers, the
//     median of -starts runs;
//   - idleness: the controller's and, separately, its supervisor child's
//     RSS, CPU time, wake-ups per second (context switches of all threads)
//     and threads over -idle with N workers;
//   - crash to ready: SIGKILL a worker, time until its replacement has said
//     ready, median and p95 over -kills kills, with 1 and with N workers.
//
// Readiness is timed by the workers themselves: right after writing its
// ready message a worker writes its pid and CLOCK_MONOTONIC to a FIFO this
// command reads, so nothing polls the controller during a measurement.
//
//	go run ./bench/controller                   # builds vigil and the worker
//	go run ./bench/controller -vigil bin/vigil -workers 100 -kills 50 -idle 30s
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigild/vigil/bench/internal/procfs"
	"golang.org/x/sys/unix"
)

// envReadyFIFO is idleworker.EnvReadyFIFO.
const envReadyFIFO = "VIGIL_BENCH_READY_FIFO"

type options struct {
	vigil, worker string
	workers       int
	kills         int
	starts        int
	idle          time.Duration
	settle        time.Duration
	pause         time.Duration
	breakdown     bool
	verbose       bool
}

func main() {
	var o options
	flag.StringVar(&o.vigil, "vigil", "", "the vigil binary (default: build ./cmd/vigil)")
	flag.StringVar(&o.worker, "worker", "", "the idle worker binary (default: build ./bench/controller/idleworker)")
	flag.IntVar(&o.workers, "workers", 100, "workers of the start-up, idle and many-workers crash measurements")
	flag.IntVar(&o.kills, "kills", 50, "timed kills per crash-to-ready measurement (after 3 untimed ones)")
	flag.IntVar(&o.starts, "starts", 5, "timed start-ups of vigil run (the last one goes on to the idle and crash measurements)")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "idle measurement window (0 skips it)")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "wait after ready before the idle window")
	flag.DurationVar(&o.pause, "pause", 50*time.Millisecond, "pause between kills (longer than the service's stable_after of 10ms, so every restart is immediate)")
	flag.BoolVar(&o.breakdown, "breakdown", false, "also time each killed worker's exit (a pidfd this command polls, which perturbs the figures a little) and print crash to ready split into: the kill until the worker is dead, vigil's reaction until the replacement is exec'd and running, the replacement's own start-up (the floor)")
	flag.BoolVar(&o.verbose, "v", false, "show vigil's output on stderr")
	flag.Parse()
	if o.workers < 1 || o.kills < 1 || o.starts < 1 || o.idle < 0 || o.settle < 0 || o.pause < 0 {
		fmt.Fprintln(os.Stderr, "bench/controller: -workers, -kills and -starts must be positive; -idle, -settle and -pause not negative")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/controller:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "vigil-bench-controller-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.vigil == "" {
		o.vigil = filepath.Join(dir, "vigil")
		if err := goBuild(o.vigil, "github.com/vigild/vigil/cmd/vigil"); err != nil {
			return err
		}
	}
	if o.worker == "" {
		o.worker = filepath.Join(dir, "idleworker")
		if err := goBuild(o.worker, "github.com/vigild/vigil/bench/controller/idleworker"); err != nil {
			return err
		}
	}
	for _, p := range []*string{&o.vigil, &o.worker} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	b, err := newBench(dir, o)
	if err != nil {
		return err
	}
	defer b.close()

	fmt.Printf("machine: %d CPUs, Linux %s; vigil %s; worker %s\n", nCPU(), kernel(), o.vigil, o.worker)

	floor, err := b.workerFloor(ctx, 20)
	if err != nil {
		return fmt.Errorf("worker start-up floor: %w", err)
	}
	fmt.Printf("floor: the idle worker started directly by this command, exec to ready: median %v, p95 %v (20 runs)\n",
		median(floor), p95(floor))

	// Start-ups; the last session stays for the idle and crash measurements.
	var totals, firsts, lasts, stops []time.Duration
	var s *session
	for i := range o.starts {
		if s, err = b.start(ctx, o.workers); err != nil {
			return fmt.Errorf("start-up %d: %w", i+1, err)
		}
		totals = append(totals, s.startup.ready)
		firsts = append(firsts, s.startup.firstWorker)
		lasts = append(lasts, s.startup.lastWorker)
		if i < o.starts-1 {
			d, err := s.stop()
			if err != nil {
				return fmt.Errorf("start-up %d: stop: %w", i+1, err)
			}
			stops = append(stops, d)
		}
	}
	defer func() {
		if s != nil {
			s.stop()
		}
	}()
	slices.Sort(totals)
	slices.Sort(firsts)
	slices.Sort(lasts)
	fmt.Printf("start-up, %d workers: vigil run to READY=1: median %v (min %v, max %v; %d runs); first worker ready at %v, last at %v (medians)\n",
		o.workers, median(totals), totals[0].Round(10*time.Microsecond), totals[len(totals)-1].Round(10*time.Microsecond),
		len(totals), median(firsts), median(lasts))

	if o.idle > 0 {
		if err := sleep(ctx, o.settle); err != nil {
			return err
		}
		ctrl, sup, err := s.idle(ctx, o.idle)
		if err != nil {
			return fmt.Errorf("idle: %w", err)
		}
		fmt.Printf("idle %v, %d workers, controller (vigil run, pid %d): %s\n", o.idle, o.workers, s.cmd.Process.Pid, ctrl)
		fmt.Printf("idle %v, %d workers, supervisor (vigil supervise, pid %d): %s\n", o.idle, o.workers, s.supervisorPID, sup)
	}

	counts := []int{1, o.workers}
	if o.workers == 1 {
		counts = counts[:1]
	}
	for _, n := range counts {
		if n != o.workers {
			t, err := b.start(ctx, n)
			if err != nil {
				return fmt.Errorf("%d worker(s): %w", n, err)
			}
			lat, recv, dead, err := t.crashes(ctx, o.kills, o.pause)
			d, serr := t.stop()
			if err != nil {
				return fmt.Errorf("crash to ready, %d worker(s): %w", n, err)
			}
			if serr != nil {
				return fmt.Errorf("%d worker(s): stop: %w", n, serr)
			}
			stops = append(stops, d)
			printCrashes(n, lat, recv, dead, floor)
			continue
		}
		lat, recv, dead, err := s.crashes(ctx, o.kills, o.pause)
		if err != nil {
			return fmt.Errorf("crash to ready, %d workers: %w", n, err)
		}
		printCrashes(n, lat, recv, dead, floor)
	}
	d, err := s.stop()
	s = nil
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	stops = append(stops, d)
	slices.Sort(stops)
	fmt.Printf("stop: SIGTERM to vigil run exited, nothing left: median %v (%d stops)\n", median(stops), len(stops))
	return nil
}

func printCrashes(n int, lat, recv, dead, floor []time.Duration) {
	fmt.Printf("crash to ready, %d worker(s): median %v, p95 %v, max %v (%d kills); as this command read it: median %v, p95 %v\n",
		n, median(lat), p95(lat), lat[len(lat)-1].Round(10*time.Microsecond), len(lat), median(recv), p95(recv))
	if len(dead) > 0 {
		fmt.Printf("  of which (medians): kill until the worker is dead %v; the replacement's own start-up (floor) %v; leaving vigil's reaction, from death to the replacement's exec, %v\n",
			median(dead), median(floor), median(lat)-median(dead)-median(floor))
	}
}

func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}

// stamp is one worker's ready moment.
type stamp struct {
	pid  int
	at   int64 // CLOCK_MONOTONIC, ns, as the worker read it
	recv int64 // CLOCK_MONOTONIC, ns, as this command read the line
}

// bench holds what every session shares: the FIFO of ready stamps.
type bench struct {
	dir    string
	o      options
	fifo   *os.File
	stamps chan stamp
	done   chan struct{}
	seq    int
}

func newBench(dir string, o options) (*bench, error) {
	path := filepath.Join(dir, "ready.fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("mkfifo %s: %w", path, err)
	}
	// Read-write: the FIFO never reports EOF between workers, and a
	// worker's open for writing never blocks.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	b := &bench{dir: dir, o: o, fifo: f, stamps: make(chan stamp, 4096), done: make(chan struct{})}
	go b.read()
	return b, nil
}

// read turns the FIFO's lines into stamps until the FIFO is closed.
func (b *bench) read() {
	defer close(b.done)
	sc := bufio.NewScanner(b.fifo)
	for sc.Scan() {
		now := monotonic()
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			fmt.Fprintf(os.Stderr, "bench/controller: bad stamp %q\n", sc.Text())
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		at, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			fmt.Fprintf(os.Stderr, "bench/controller: bad stamp %q\n", sc.Text())
			continue
		}
		b.stamps <- stamp{pid: pid, at: at, recv: now}
	}
}

func (b *bench) close() {
	b.fifo.Close()
	<-b.done
}

// drain drops stamps already read.
func (b *bench) drain() {
	for {
		select {
		case <-b.stamps:
		default:
			return
		}
	}
}

// next waits for a stamp.
func (b *bench) next(ctx context.Context, timeout time.Duration, exited <-chan struct{}) (stamp, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case s := <-b.stamps:
		return s, nil
	case <-t.C:
		return stamp{}, fmt.Errorf("no worker said ready within %v", timeout)
	case <-exited:
		return stamp{}, errors.New("vigil run exited")
	case <-ctx.Done():
		return stamp{}, ctx.Err()
	}
}

// workerFloor times the idle worker started directly, from exec to its
// ready stamp: what no supervisor can beat on this machine.
func (b *bench) workerFloor(ctx context.Context, runs int) ([]time.Duration, error) {
	b.drain()
	var out []time.Duration
	for i := range runs + 3 {
		cmd := exec.Command(b.o.worker)
		cmd.Env = append(os.Environ(), envReadyFIFO+"="+b.fifo.Name())
		cmd.Stderr = os.Stderr
		t0 := monotonic()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		st, err := b.next(ctx, 10*time.Second, nil)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if err != nil {
			return nil, err
		}
		if i >= 3 {
			out = append(out, time.Duration(st.at-t0))
		}
	}
	slices.Sort(out)
	return out, nil
}

// session is one `vigil run` with n workers.
type session struct {
	b             *bench
	n             int
	cmd           *exec.Cmd
	exited        chan struct{}
	waitErr       error
	notify        *net.UnixConn
	log           string
	logf          *os.File     // vigil's output, closed once it has exited
	pids          []int        // the current worker pids
	seen          map[int]bool // every worker pid ever seen
	supervisorPID int
	startup       struct{ ready, firstWorker, lastWorker time.Duration }
}

// start runs `vigil run` with n workers and waits until the controller
// says READY=1 and every worker has stamped its readiness.
func (b *bench) start(ctx context.Context, n int) (*session, error) {
	b.seq++
	dir := filepath.Join(b.dir, fmt.Sprintf("run%d", b.seq))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`[supervisor]
socket = "supervisor.ipc"

[services.idle]
command = [%q]
count = %d
supervised = false
stable_after = "10ms"
graceful_stop = "5s"
env = { %s = %q }
`, b.o.worker, n, envReadyFIFO, b.fifo.Name())
	confPath := filepath.Join(dir, "vigil.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	notifyPath := filepath.Join(dir, "notify.sock")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	readyCh := make(chan int64, 1)
	go func() {
		buf := make([]byte, 8192)
		for {
			k, err := nc.Read(buf)
			if err != nil {
				return
			}
			now := monotonic()
			for _, line := range strings.Split(string(buf[:k]), "\n") {
				if line == "READY=1" {
					select {
					case readyCh <- now:
					default:
					}
				}
			}
		}
	}()
	s := &session{b: b, n: n, notify: nc, log: filepath.Join(dir, "vigil.log"), seen: map[int]bool{}, exited: make(chan struct{})}
	logf, err := os.Create(s.log)
	if err != nil {
		nc.Close()
		return nil, err
	}
	s.logf = logf
	var out io.Writer = logf
	if b.o.verbose {
		out = io.MultiWriter(logf, os.Stderr)
	}
	cmd := exec.Command(b.o.vigil, "run", "-c", confPath)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	b.drain()
	t0 := monotonic()
	if err := cmd.Start(); err != nil {
		nc.Close()
		logf.Close()
		return nil, err
	}
	s.cmd = cmd
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	fail := func(err error) (*session, error) {
		_, _ = s.stop()
		return nil, fmt.Errorf("%w%s", err, s.tail())
	}
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	var ready int64
	for ready == 0 || len(s.pids) < n {
		select {
		case ready = <-readyCh:
		case st := <-b.stamps:
			if len(s.pids) == 0 {
				s.startup.firstWorker = time.Duration(st.at - t0)
			}
			s.startup.lastWorker = time.Duration(st.at - t0)
			s.pids = append(s.pids, st.pid)
			s.seen[st.pid] = true
		case <-s.exited:
			return fail(fmt.Errorf("vigil run exited before ready: %v", s.waitErr))
		case <-deadline.C:
			return fail(fmt.Errorf("not ready after 60s: READY=1 seen: %v, %d of %d workers ready", ready != 0, len(s.pids), n))
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	s.startup.ready = time.Duration(ready - t0)
	s.supervisorPID = procfs.FindChild(cmd.Process.Pid, "supervise")
	if s.supervisorPID == 0 {
		return fail(errors.New("no vigil supervise child found"))
	}
	return s, nil
}

// exitState describes vigil run's end, if it has ended.
func (s *session) exitState() string {
	select {
	case <-s.exited:
		return fmt.Sprintf("exited: %v", s.waitErr)
	default:
		return "running"
	}
}

// tail returns the end of vigil's output, for errors.
func (s *session) tail() string {
	data, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	if len(lines) == 0 || lines[0] == "" {
		return ""
	}
	return "\nvigil's output ends with:\n  " + strings.Join(lines, "\n  ")
}

// stop sends SIGTERM to vigil run, waits for it, and checks that nothing
// it started is left (killing, by pid, whatever is). It returns how long
// vigil took to exit.
func (s *session) stop() (time.Duration, error) {
	defer s.notify.Close()
	t0 := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		err = errors.New("vigil run did not exit within 30s of SIGTERM; killed")
		_ = unix.Kill(-s.cmd.Process.Pid, unix.SIGKILL)
		<-s.exited
	}
	took := time.Since(t0)
	s.logf.Close()
	if err == nil && s.waitErr != nil {
		err = fmt.Errorf("vigil run: %w%s", s.waitErr, s.tail())
	}
	// The workers and the supervisor die with vigil; give the kernel a
	// moment to reap the orphans before calling them left over.
	var left []int
	for range 50 {
		left = left[:0]
		for pid := range s.seen {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == s.b.o.worker && !procfs.Zombie(pid) {
				left = append(left, pid)
			}
		}
		if s.supervisorPID != 0 && !procfs.Zombie(s.supervisorPID) && strings.Contains(procfs.Cmdline(s.supervisorPID), "supervise") {
			left = append(left, s.supervisorPID)
		}
		if len(left) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(left) > 0 {
		for _, pid := range left {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		err = errors.Join(err, fmt.Errorf("processes left after vigil run exited (now killed): %v", left))
	}
	return took, err
}

// crashes kills the workers in turn (kills+3 times, the first 3 untimed)
// and times each until its replacement has stamped its readiness: as the
// worker read the clock, and as this command read the stamp.
func (s *session) crashes(ctx context.Context, kills int, pause time.Duration) (lat, recv, dead []time.Duration, err error) {
	for i := range kills + 3 {
		if err := sleep(ctx, pause); err != nil {
			return nil, nil, nil, err
		}
		k := i % len(s.pids)
		victim := s.pids[k]
		pidfd := -1
		if s.b.o.breakdown {
			if pidfd, err = unix.PidfdOpen(victim, 0); err != nil {
				return nil, nil, nil, fmt.Errorf("pidfd_open %d: %w", victim, err)
			}
		}
		s.b.drain()
		t0 := monotonic()
		if err := unix.Kill(victim, unix.SIGKILL); err != nil {
			if pidfd >= 0 {
				unix.Close(pidfd)
			}
			return nil, nil, nil, fmt.Errorf("kill %d: %w", victim, err)
		}
		var tDead int64
		if pidfd >= 0 {
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			for {
				n, err := unix.Poll(fds, 10_000)
				if errors.Is(err, unix.EINTR) {
					continue
				}
				if err == nil && n == 1 {
					tDead = monotonic()
				}
				break
			}
			unix.Close(pidfd)
		}
		st, err := s.b.next(ctx, 10*time.Second, s.exited)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("after killing %d: %w (vigil run: %v); vigil run's children: %s%s", victim, err, s.exitState(), children(s.cmd.Process.Pid), s.tail())
		}
		if st.pid == victim || s.seen[st.pid] {
			return nil, nil, nil, fmt.Errorf("after killing %d: a stamp from pid %d, not a new worker", victim, st.pid)
		}
		s.seen[st.pid] = true
		s.pids[k] = st.pid
		if i >= 3 {
			lat = append(lat, time.Duration(st.at-t0))
			recv = append(recv, time.Duration(st.recv-t0))
			if tDead != 0 {
				dead = append(dead, time.Duration(tDead-t0))
			}
		}
	}
	slices.Sort(lat)
	slices.Sort(recv)
	slices.Sort(dead)
	return lat, recv, dead, nil
}

// idle measures the controller and its supervisor over d.
func (s *session) idle(ctx context.Context, d time.Duration) (ctrl, sup figures, err error) {
	pids := []int{s.cmd.Process.Pid, s.supervisorPID}
	var before [2]sample
	for i, pid := range pids {
		if before[i], err = take(pid); err != nil {
			return ctrl, sup, err
		}
	}
	if err := sleep(ctx, d); err != nil {
		return ctrl, sup, err
	}
	var out [2]figures
	for i, pid := range pids {
		after, err := take(pid)
		if err != nil {
			return ctrl, sup, err
		}
		out[i] = diff(before[i], after)
	}
	return out[0], out[1], nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func median(t []time.Duration) time.Duration {
	return t[len(t)/2].Round(10 * time.Microsecond)
}

func p95(t []time.Duration) time.Duration {
	i := (len(t)*95 + 99) / 100
	return t[min(i, len(t))-1].Round(10 * time.Microsecond)
}
