//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/bench/internal/procfs"
	"github.com/vigild/vigil/supervisor"
)

// The idle worker's environment (see bench/controller/idleworker).
const (
	envReadyFIFO = "VIGIL_BENCH_READY_FIFO"
	envRegister  = "VIGIL_BENCH_REGISTER"
)

// stamp is one worker's ready moment.
type stamp struct {
	pid int
	at  int64 // CLOCK_MONOTONIC, ns, as the worker read it
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
	b := &bench{dir: dir, o: o, fifo: f, stamps: make(chan stamp, 1<<14), done: make(chan struct{})}
	go b.read()
	return b, nil
}

// read turns the FIFO's lines into stamps until the FIFO is closed.
func (b *bench) read() {
	defer close(b.done)
	sc := bufio.NewScanner(b.fifo)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			fmt.Fprintf(os.Stderr, "bench/scale: bad stamp %q\n", sc.Text())
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		at, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			fmt.Fprintf(os.Stderr, "bench/scale: bad stamp %q\n", sc.Text())
			continue
		}
		b.stamps <- stamp{pid: pid, at: at}
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

// floor spawns n workers straight from this command, one after the
// other, and returns the time from the first spawn until the last has
// stamped its readiness, and what that cost the machine. The workers are
// stopped before it returns.
func (b *bench) floor(ctx context.Context, n int) (time.Duration, startCost, error) {
	b.drain()
	cmds := make([]*exec.Cmd, 0, n)
	defer func() {
		for _, c := range cmds {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range cmds {
			_ = c.Wait()
		}
	}()
	env := append(os.Environ(), envReadyFIFO+"="+b.fifo.Name())
	m0, self0 := readMachineCPU(), threadsCPU(os.Getpid())
	t0 := monotonic()
	for range n {
		cmd := exec.Command(b.o.worker)
		cmd.Env = env
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return 0, startCost{}, err
		}
		cmds = append(cmds, cmd)
	}
	var last int64
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for range n {
		select {
		case st := <-b.stamps:
			last = max(last, st.at)
		case <-timeout.C:
			return 0, startCost{}, errors.New("not every worker ready within 60s")
		case <-ctx.Done():
			return 0, startCost{}, ctx.Err()
		}
	}
	cost := startCost{machine: readMachineCPU().since(m0), self: threadsCPU(os.Getpid()) - self0}
	pids := make([]int, len(cmds))
	for i, c := range cmds {
		pids[i] = c.Process.Pid
	}
	cost.workers = workersCPU(pids)
	return time.Duration(last - t0), cost, nil
}

// session is one `vigil run` with n workers.
type session struct {
	b             *bench
	n             int
	socket        string
	cmd           *exec.Cmd
	exited        chan struct{}
	waitErr       error
	notify        *net.UnixConn
	log           string
	logf          *os.File
	pids          []int        // the current worker pids
	seen          map[int]bool // every worker pid ever seen
	supervisorPID int
	startup       struct {
		ready, lastWorker time.Duration
		// CPU time of vigil run and its supervisor when the last worker was
		// ready (their threads' run time, from /proc/PID/task/*/schedstat).
		ctrlCPU, supCPU time.Duration
		cost            startCost
	}
}

// start runs `vigil run` with n supervised workers (their service with
// keys added), which register with the supervisor once ready if register
// is true, and waits until the controller says READY=1 and every worker
// has stamped its readiness.
func (b *bench) start(ctx context.Context, vigil, keys string, n int, register bool) (*session, error) {
	b.seq++
	dir := filepath.Join(b.dir, fmt.Sprintf("run%d", b.seq))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	socket := filepath.Join(dir, "supervisor.ipc")
	conf := fmt.Sprintf(`[supervisor]
socket = %q

[services.idle]
command = [%q]
count = %d
stable_after = "10ms"
graceful_stop = "5s"
env = { %s = %q, %s = "%d" }
%s
`, socket, b.o.worker, n, envReadyFIFO, b.fifo.Name(), envRegister, b2i(register), keys)
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
			for line := range strings.SplitSeq(string(buf[:k]), "\n") {
				if line == "READY=1" {
					select {
					case readyCh <- now:
					default:
					}
				}
			}
		}
	}()
	s := &session{b: b, n: n, socket: socket, notify: nc, log: filepath.Join(dir, "vigil.log"), seen: map[int]bool{}, exited: make(chan struct{})}
	if s.logf, err = os.Create(s.log); err != nil {
		nc.Close()
		return nil, err
	}
	var out io.Writer = s.logf
	if b.o.verbose {
		out = io.MultiWriter(s.logf, os.Stderr)
	}
	cmd := exec.Command(vigil, "run", "-c", confPath)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	b.drain()
	m0, self0 := readMachineCPU(), threadsCPU(os.Getpid())
	t0 := monotonic()
	if err := cmd.Start(); err != nil {
		nc.Close()
		s.logf.Close()
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
	deadline := time.NewTimer(120 * time.Second)
	defer deadline.Stop()
	var ready int64
	for ready == 0 || len(s.pids) < n {
		select {
		case ready = <-readyCh:
		case st := <-b.stamps:
			s.startup.lastWorker = max(s.startup.lastWorker, time.Duration(st.at-t0))
			s.pids = append(s.pids, st.pid)
			s.seen[st.pid] = true
		case <-s.exited:
			return fail(fmt.Errorf("vigil run exited before ready: %v", s.waitErr))
		case <-deadline.C:
			return fail(fmt.Errorf("not ready after 120s: READY=1 seen: %v, %d of %d workers ready", ready != 0, len(s.pids), n))
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	s.startup.cost.machine = readMachineCPU().since(m0)
	s.startup.cost.self = threadsCPU(os.Getpid()) - self0
	s.startup.ready = time.Duration(ready - t0)
	s.supervisorPID = procfs.FindChild(cmd.Process.Pid, "supervise")
	if s.supervisorPID == 0 {
		return fail(errors.New("no vigil supervise child found"))
	}
	s.startup.ctrlCPU, s.startup.supCPU = threadsCPU(cmd.Process.Pid), threadsCPU(s.supervisorPID)
	s.startup.cost.workers = workersCPU(s.pids)
	return s, nil
}

// waitRegistered waits until the supervisor lists n registered workers
// and the controller.
func (s *session) waitRegistered(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := supervisor.Dial(ctx, s.socket)
	if err != nil {
		return err
	}
	defer c.Close()
	got := 0
	for {
		st, err := c.Status(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %d registrations (%d so far): %w", n+1, got, err)
		}
		if got = len(st.Connections); got >= n+1 {
			return nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for %d registrations (%d so far): %w", n+1, got, err)
		}
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
	case <-time.After(60 * time.Second):
		err = errors.New("vigil run did not exit within 60s of SIGTERM; killed")
		_ = unix.Kill(-s.cmd.Process.Pid, unix.SIGKILL)
		<-s.exited
	}
	took := time.Since(t0)
	s.logf.Close()
	if err == nil && s.waitErr != nil {
		err = fmt.Errorf("vigil run: %w%s", s.waitErr, s.tail())
	}
	var left []int
	for range 100 {
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

// crashes kills the workers in turn (kills+3 times, the first 3 untimed),
// 50 ms apart, and times each until its replacement has stamped its
// readiness.
func (s *session) crashes(ctx context.Context, kills int) ([]time.Duration, error) {
	var lat []time.Duration
	for i := range kills + 3 {
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
		k := (i * 7919) % len(s.pids) // spread over the instances
		victim := s.pids[k]
		s.b.drain()
		t0 := monotonic()
		if err := unix.Kill(victim, unix.SIGKILL); err != nil {
			return nil, fmt.Errorf("kill %d: %w", victim, err)
		}
		var st stamp
		select {
		case st = <-s.b.stamps:
		case <-time.After(20 * time.Second):
			return nil, fmt.Errorf("after killing %d: no worker ready within 20s%s", victim, s.tail())
		case <-s.exited:
			return nil, fmt.Errorf("after killing %d: vigil run exited: %v%s", victim, s.waitErr, s.tail())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if s.seen[st.pid] {
			return nil, fmt.Errorf("after killing %d: a stamp from pid %d, not a new worker", victim, st.pid)
		}
		s.seen[st.pid] = true
		s.pids[k] = st.pid
		if i >= 3 {
			lat = append(lat, time.Duration(st.at-t0))
		}
	}
	slices.Sort(lat)
	return lat, nil
}

func monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// statusCommand times `vigil status` as a whole command (start-up
// included) against this session, and the status call alone through
// vigil's rpc client, the controller's children included.
func (s *session) statusCommand(ctx context.Context, n int) error {
	runs := max(10, min(50, 20000/n))
	var whole []time.Duration
	for i := range runs + 2 {
		cmd := exec.CommandContext(ctx, s.b.o.vigil, "status", "--socket", s.socket)
		cmd.Stdout = io.Discard
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("vigil status: %w: %s", err, stderr.String())
		}
		if i >= 2 {
			whole = append(whole, time.Since(start))
		}
	}
	c, err := supervisor.Dial(ctx, s.socket)
	if err != nil {
		return err
	}
	defer c.Close()
	var call []time.Duration
	for i := range runs + 2 {
		start := time.Now()
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if st.Part("children") == nil {
			return errors.New("status: no children from the controller")
		}
		if i >= 2 {
			call = append(call, time.Since(start))
		}
	}
	fmt.Printf("N=%d: vigil status, the whole command: median %v, p95 %v; the status call alone (children included): median %v, p95 %v (%d runs each)\n",
		n, median(whole), p95(whole), median(call), p95(call), runs)
	return nil
}

// threadsCPU is the run time of pid's threads (those still there), from
// /proc/PID/task/*/schedstat, in nanoseconds.
func threadsCPU(pid int) time.Duration {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}
