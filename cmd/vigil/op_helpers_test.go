package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// The helpers of the operator's tests: a fake worker, a fake controller
// (which starts `vigil supervise` as its child, as vigil run does, and
// workers), and a process holding many raw registrations.
func init() {
	helpers["op-worker"] = opWorkerMain
	helpers["op-controller"] = opControllerMain
	helpers["op-registrants"] = opRegistrantsMain
}

// opWorkerMain registers with {process_id, name, instance} (arguments
// NAME INSTANCE) and serves a few operations until SIGTERM or SIGINT. With
// OP_WORKER_MINIMAL=1 it serves only "stream" and "echo".
func opWorkerMain(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: op-worker NAME INSTANCE")
		return 2
	}
	instance, _ := strconv.Atoi(args[1])
	handlers := rpc.Handlers{
		"stream": func(ctx context.Context, call *rpc.Call) error {
			for i := range 3 {
				if err := call.Reply(map[string]int{"n": i}); err != nil {
					return err
				}
			}
			return call.Finish(map[string]bool{"done": true})
		},
		"echo": func(ctx context.Context, call *rpc.Call) error {
			return call.Finish(call.Message())
		},
	}
	if os.Getenv("OP_WORKER_MINIMAL") != "1" {
		handlers["sleep"] = func(ctx context.Context, call *rpc.Call) error {
			<-ctx.Done()
			return ctx.Err()
		}
		handlers["thread_dump"] = func(ctx context.Context, call *rpc.Call) error {
			var b bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&b, 2)
			return call.Finish(map[string]string{"data": b.String(), "format": "text"})
		}
		handlers["memory_dump"] = func(ctx context.Context, call *rpc.Call) error {
			var b bytes.Buffer
			if err := pprof.Lookup("heap").WriteTo(&b, 0); err != nil {
				return err
			}
			return call.Finish(map[string]string{"data": base64.StdEncoding.EncodeToString(b.Bytes()), "encoding": "base64", "format": "pprof"})
		}
		handlers["cpu_profile"] = func(ctx context.Context, call *rpc.Call) error {
			var secs float64
			if err := call.Message().DecodeField("duration", &secs); err != nil || secs <= 0 {
				return rpc.ArgumentError("Positive duration is required!")
			}
			var b bytes.Buffer
			if err := pprof.StartCPUProfile(&b); err != nil {
				return err
			}
			call.Reply(map[string]any{"started": true, "duration": secs})
			deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
			for time.Now().Before(deadline) { // burn a little CPU to sample
				_ = strconv.Itoa(int(time.Now().UnixNano()))
			}
			pprof.StopCPUProfile()
			return call.Finish(map[string]string{"data": base64.StdEncoding.EncodeToString(b.Bytes()), "encoding": "base64", "format": "pprof"})
		}
		handlers["runtime_metrics"] = func(ctx context.Context, call *rpc.Call) error {
			return call.Finish(map[string]any{"data": map[string]any{"/sched/goroutines:goroutines": runtime.NumGoroutine(), "gomaxprocs": runtime.GOMAXPROCS(0)}, "format": "json"})
		}
		var gcMu sync.Mutex
		var gcStarted *runtime.MemStats
		handlers["garbage_profile_start"] = func(ctx context.Context, call *rpc.Call) error {
			gcMu.Lock()
			defer gcMu.Unlock()
			gcStarted = new(runtime.MemStats)
			runtime.ReadMemStats(gcStarted)
			return call.Finish(map[string]bool{"started": true})
		}
		handlers["garbage_profile_stop"] = func(ctx context.Context, call *rpc.Call) error {
			gcMu.Lock()
			defer gcMu.Unlock()
			if gcStarted == nil {
				return errors.New("garbage profile not running")
			}
			var end runtime.MemStats
			runtime.ReadMemStats(&end)
			gcStarted = nil
			return call.Finish(map[string]any{"data": map[string]any{"collections": end.NumGC}, "format": "json"})
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := supervisor.DialOptions(ctx, os.Getenv(EnvSupervisorSocket), supervisor.ClientOptions{Handlers: handlers})
	if err != nil {
		fmt.Fprintln(os.Stderr, "op-worker:", err)
		return 1
	}
	defer c.Close()
	id, err := c.Register(ctx, map[string]any{"process_id": os.Getpid(), "name": args[0], "instance": instance})
	if err != nil {
		fmt.Fprintln(os.Stderr, "op-worker:", err)
		return 1
	}
	fmt.Println("registered", id)
	select {
	case <-ctx.Done():
	case <-c.Done():
	}
	return 0
}

// opChildProc is one worker of the fake controller.
type opChildProc struct {
	service  string
	instance int
	cmd      *exec.Cmd
	state    string
	restarts int
	started  time.Time
	lastExit *string
}

// opController is the fake controller's state.
type opController struct {
	mu       sync.Mutex
	socket   string
	children []*opChildProc
	spawns   map[string]int
}

// opControllerMain plays vigil run for the tests: arguments VIGIL SOCKET
// SPEC, SPEC as "web=2,db=1". It starts `VIGIL supervise --socket SOCKET` as
// its child, registers as the controller, serves children, restart_children
// and set_state (a test's way to mark a child unhealthy), starts the
// workers, and prints "ready" once they have all registered. It prints
// "signal NAME" for each SIGHUP, SIGINT or SIGTERM, and stops everything on
// the last two.
func opControllerMain(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: op-controller VIGIL SOCKET SPEC")
		return 2
	}
	vigil, socket, spec := args[0], args[1], args[2]
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)

	sup := exec.Command(vigil, "supervise", "--socket", socket)
	sup.Stderr = io.Discard
	if os.Getenv("OP_VERBOSE") != "" {
		sup.Stderr = os.Stderr
	}
	sup.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := sup.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "op-controller:", err)
		return 1
	}
	defer func() {
		sup.Process.Signal(syscall.SIGTERM)
		sup.Wait()
	}()
	ctl := &opController{socket: socket, spawns: map[string]int{}}
	defer ctl.stopAll()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c *supervisor.Client
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err = supervisor.DialOptions(ctx, socket, supervisor.ClientOptions{Handlers: ctl.handlers()})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "op-controller:", err)
		return 1
	}
	defer c.Close()
	if _, err := c.Register(ctx, map[string]any{"role": "controller", "process_id": os.Getpid()}); err != nil {
		fmt.Fprintln(os.Stderr, "op-controller:", err)
		return 1
	}
	for part := range strings.SplitSeq(spec, ",") {
		name, count, _ := strings.Cut(part, "=")
		n, _ := strconv.Atoi(count)
		for i := range n {
			ch, err := ctl.spawn(name, i)
			if err != nil {
				fmt.Fprintln(os.Stderr, "op-controller:", err)
				return 1
			}
			ctl.mu.Lock()
			ctl.children = append(ctl.children, ch)
			ctl.mu.Unlock()
		}
	}
	fmt.Println("ready")
	for s := range sigs {
		name := map[os.Signal]string{syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGTERM: "TERM"}[s]
		fmt.Println("signal", name)
		if name != "HUP" {
			return 0
		}
	}
	return 0
}

// spawn starts a worker and waits until it has registered.
func (ctl *opController) spawn(service string, instance int) (*opChildProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, service, strconv.Itoa(instance))
	cmd.Env = append(os.Environ(), helperEnv+"=op-worker", EnvSupervisorSocket+"="+ctl.socket)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "registered") {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("worker %s.%d did not register: %q %v", service, instance, line, err)
	}
	ctl.mu.Lock()
	ctl.spawns[service]++
	ctl.mu.Unlock()
	return &opChildProc{service: service, instance: instance, cmd: cmd, state: "ready", started: time.Now()}, nil
}

func (ctl *opController) stopAll() {
	ctl.mu.Lock()
	children := ctl.children
	ctl.children = nil
	ctl.mu.Unlock()
	for _, ch := range children {
		ch.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, ch := range children {
		ch.cmd.Wait()
	}
}

func (ctl *opController) handlers() rpc.Handlers {
	return rpc.Handlers{
		"children": func(ctx context.Context, call *rpc.Call) error {
			ctl.mu.Lock()
			defer ctl.mu.Unlock()
			list := make([]map[string]any, 0, len(ctl.children))
			stats := map[string]map[string]any{}
			for _, ch := range ctl.children {
				list = append(list, map[string]any{
					"service": ch.service, "instance": ch.instance, "pid": ch.cmd.Process.Pid,
					"state": ch.state, "restarts": ch.restarts, "last_exit": ch.lastExit,
					"started_at": ch.started.UTC().Format(time.RFC3339), "uptime": time.Since(ch.started).Seconds(),
					"next_restart": nil,
				})
				s := stats[ch.service]
				if s == nil {
					s = map[string]any{"spawns": ctl.spawns[ch.service], "restarts": 0, "failures": 0, "restart_rate": 0.0, "failure_rate": 0.0}
					stats[ch.service] = s
				}
				s["restarts"] = s["restarts"].(int) + ch.restarts
			}
			return call.Finish(map[string]any{"children": list, "statistics": stats})
		},
		"set_state": func(ctx context.Context, call *rpc.Call) error {
			var p struct {
				Service  string `json:"service"`
				Instance int    `json:"instance"`
				State    string `json:"state"`
			}
			if err := call.Message().Decode(&p); err != nil {
				return err
			}
			ctl.mu.Lock()
			defer ctl.mu.Unlock()
			for _, ch := range ctl.children {
				if ch.service == p.Service && ch.instance == p.Instance {
					ch.state = p.State
					return call.Finish(nil)
				}
			}
			return rpc.ArgumentError("no child %s.%d", p.Service, p.Instance)
		},
		"restart_children": func(ctx context.Context, call *rpc.Call) error {
			var p struct {
				Service  string `json:"service"`
				Instance *int   `json:"instance"`
			}
			if err := call.Message().Decode(&p); err != nil || p.Service == "" {
				return rpc.ArgumentError("restart_children: 'service' is required")
			}
			ctl.mu.Lock()
			var targets []*opChildProc
			for _, ch := range ctl.children {
				if ch.service == p.Service && (p.Instance == nil || *p.Instance == ch.instance) {
					targets = append(targets, ch)
				}
			}
			ctl.mu.Unlock()
			if len(targets) == 0 {
				return rpc.ArgumentError("restart_children: no child of %s matches", p.Service)
			}
			restarted := []int{}
			for _, old := range targets {
				repl, err := ctl.spawn(old.service, old.instance)
				if err != nil {
					return err
				}
				repl.restarts = old.restarts + 1
				ctl.mu.Lock()
				i := slices.Index(ctl.children, old)
				ctl.children[i] = repl
				ctl.mu.Unlock()
				old.cmd.Process.Signal(syscall.SIGTERM)
				old.cmd.Wait()
				exit := old.cmd.ProcessState.String()
				repl.lastExit = &exit
				restarted = append(restarted, old.cmd.Process.Pid)
			}
			return call.Finish(map[string]any{"restarted": restarted})
		},
	}
}

// opRegistrantsMain holds N registrations (arguments SOCKET N [PID]): each
// registers {process_id, name: "svc", instance: i}; with PID, every one
// claims that pid. It prints "ready", then waits for its stdin to close.
func opRegistrantsMain(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: op-registrants SOCKET N [PID]")
		return 2
	}
	n, _ := strconv.Atoi(args[1])
	pid := os.Getpid()
	if len(args) > 2 {
		pid, _ = strconv.Atoi(args[2])
	}
	ctx := context.Background()
	var clients []*supervisor.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range n {
		c, err := supervisor.Dial(ctx, args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, "op-registrants:", err)
			return 1
		}
		clients = append(clients, c)
		if _, err := c.Register(ctx, map[string]any{"process_id": pid, "name": "svc", "instance": i}); err != nil {
			fmt.Fprintln(os.Stderr, "op-registrants:", err)
			return 1
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// Test-side tools.

// opRun runs the vigil binary and returns its stdout, stderr and exit code.
func opRun(t testing.TB, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(vigilBin, args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=", EnvSupervisorSocket+"=")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("vigil %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// opShortSocket returns a socket path short enough for sun_path.
func opShortSocket(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vop")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.ipc")
}

// opSupervise starts `vigil supervise` on socket and waits until it answers.
func opSupervise(t testing.TB, socket string, extra ...string) {
	t.Helper()
	cmd := exec.Command(vigilBin, append([]string{"supervise", "--socket", socket}, extra...)...)
	if os.Getenv("OP_VERBOSE") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	opWaitSocket(t, socket)
}

func opWaitSocket(t testing.TB, socket string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := supervisor.Dial(context.Background(), socket)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no supervisor at %s: %v", socket, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// opCtl is a running fake controller.
type opCtl struct {
	cmd   *exec.Cmd
	lines chan string
	once  sync.Once
}

// opControllerReady starts a controller and returns it once it said ready.
func opControllerReady(t testing.TB, socket, spec string) *opCtl {
	t.Helper()
	cmd := helperCmd(t, "op-controller", vigilBin, socket, spec)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &opCtl{cmd: cmd, lines: make(chan string, 16)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		c.wait()
	})
	c.expect(t, "ready", 30*time.Second)
	return c
}

// expect waits for a line from the controller.
func (c *opCtl) expect(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("controller exited before saying %q", want)
			}
			if l == want {
				return
			}
		case <-timer.C:
			t.Fatalf("controller did not say %q within %v", want, timeout)
		}
	}
}

// wait reaps the controller once (after draining its output).
func (c *opCtl) wait() {
	c.once.Do(func() {
		for range c.lines {
		}
		c.cmd.Wait()
	})
}

// opReg is a running op-registrants helper.
type opReg struct {
	pid string // the pid its registrations claim
}

// opRegistrants holds n registrations on socket until the test ends; with
// pid > 0 they all claim that pid.
func opRegistrants(t testing.TB, socket string, n, pid int) *opReg {
	t.Helper()
	args := []string{socket, strconv.Itoa(n)}
	if pid > 0 {
		args = append(args, strconv.Itoa(pid))
	}
	cmd := helperCmd(t, "op-registrants", args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("op-registrants: %q", line)
	}
	r := &opReg{pid: strconv.Itoa(cmd.Process.Pid)}
	if pid > 0 {
		r.pid = strconv.Itoa(pid)
	}
	return r
}
