package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/control"
	"github.com/vigild/vigil/logs"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// Until vigil run captures its children itself, vigil logs is tested
// against a controller of its own: it starts `vigil supervise`, registers
// as the controller, starts workers whose output a real logs.Hub captures,
// and serves children and logs (control.Logs) over the supervisor.
func init() {
	helpers["logs-controller"] = logsControllerMain
	helpers["logs-worker"] = logsWorkerMain
}

// logsWorkerMain writes "NAME says hello" to stdout and "NAME warns" to
// stderr, then "NAME tick N" every 20 ms; on SIGUSR1 it writes "NAME about
// to crash" to stderr and exits 3.
func logsWorkerMain(args []string) int {
	name := args[0]
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	fmt.Printf("%s says hello\n", name)
	fmt.Fprintf(os.Stderr, "%s warns\n", name)
	tick := time.NewTicker(20 * time.Millisecond)
	for n := 0; ; n++ {
		select {
		case <-tick.C:
			fmt.Printf("%s tick %d\n", name, n)
		case <-usr1:
			fmt.Fprintf(os.Stderr, "%s about to crash\n", name)
			return 3
		}
	}
}

// logsWorker is one worker of the test controller.
type logsWorker struct {
	service string
	cmd     *exec.Cmd
	capture *logs.Capture
	started time.Time
}

type logsController struct {
	hub     *logs.Hub
	mu      sync.Mutex
	workers []*logsWorker
}

func (ctl *logsController) start(service string, instance int) (*logsWorker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, service)
	cmd.Env = append(os.Environ(), helperEnv+"=logs-worker")
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, err
	}
	w := &logsWorker{service: service, cmd: cmd, started: time.Now()}
	w.capture = ctl.hub.Capture(logs.Identity{Service: service, Instance: instance, PID: cmd.Process.Pid}, outR, errR)
	return w, nil
}

// stop ends a worker: SIGUSR1 (it crashes), then its output's end, a
// second at most. A worker still starting ignores SIGUSR1 (Go's runtime
// drops it until signal.Notify asks for it): it is killed after 2 s.
func (w *logsWorker) stop() {
	w.cmd.Process.Signal(syscall.SIGUSR1)
	exited := make(chan struct{})
	go func() { w.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(2 * time.Second):
		w.cmd.Process.Kill()
		<-exited
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	w.capture.Wait(ctx)
	cancel()
}

// logsControllerMain (VIGIL SOCKET SERVICES...) runs one worker of each
// service and prints "ready"; on SIGHUP it crashes the first service's
// worker, starts a new one and prints "restarted"; SIGTERM stops it.
func logsControllerMain(args []string) int {
	vigil, socket, services := args[0], args[1], args[2:]
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	sup := exec.Command(vigil, "supervise", "--socket", socket)
	sup.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := sup.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "logs-controller:", err)
		return 1
	}
	defer func() {
		sup.Process.Signal(syscall.SIGTERM)
		sup.Wait()
	}()
	ctl := &logsController{hub: logs.New(logs.Options{Settings: logs.Settings{RingLines: 1000}})}
	defer ctl.hub.Close(context.Background())
	defer func() {
		for _, w := range ctl.workers {
			w.stop()
		}
	}()
	for _, s := range services {
		w, err := ctl.start(s, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "logs-controller:", err)
			return 1
		}
		ctl.workers = append(ctl.workers, w)
	}
	handlers := rpc.Handlers{"logs": control.Logs(ctl.hub), "children": ctl.children}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c *supervisor.Client
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err = supervisor.DialOptions(ctx, socket, supervisor.ClientOptions{Handlers: handlers})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "logs-controller:", err)
		return 1
	}
	defer c.Close()
	if _, err := c.Register(ctx, map[string]any{"role": "controller", "process_id": os.Getpid()}); err != nil {
		fmt.Fprintln(os.Stderr, "logs-controller:", err)
		return 1
	}
	fmt.Println("ready")
	for s := range sigs {
		if s != syscall.SIGHUP {
			return 0
		}
		ctl.mu.Lock()
		old := ctl.workers[0]
		ctl.mu.Unlock()
		old.stop()
		w, err := ctl.start(old.service, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "logs-controller:", err)
			return 1
		}
		ctl.mu.Lock()
		ctl.workers[0] = w
		ctl.mu.Unlock()
		fmt.Println("restarted")
	}
	return 0
}

func (ctl *logsController) children(ctx context.Context, call *rpc.Call) error {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	list := make([]map[string]any, 0, len(ctl.workers))
	stats := map[string]map[string]any{}
	for _, w := range ctl.workers {
		list = append(list, map[string]any{
			"service": w.service, "instance": 0, "pid": w.cmd.Process.Pid, "state": "ready",
			"restarts": 0, "last_exit": nil, "started_at": w.started.UTC().Format(time.RFC3339),
			"uptime": time.Since(w.started).Seconds(), "next_restart": nil,
		})
		stats[w.service] = map[string]any{"spawns": 1, "restarts": 0, "failures": 0, "restart_rate": 0.0, "failure_rate": 0.0}
	}
	return call.Finish(map[string]any{"children": list, "statistics": stats})
}

// logsCtl starts the test controller with services and waits until ready.
func logsCtl(t *testing.T, services ...string) (socket string, ctl *opCtl) {
	t.Helper()
	socket = opShortSocket(t)
	cmd := helperCmd(t, "logs-controller", append([]string{vigilBin, socket}, services...)...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its whole tree can be killed
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctl = &opCtl{cmd: cmd, lines: make(chan string, 16)}
	go func() {
		defer close(ctl.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ctl.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		ctl.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { ctl.wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("the test controller did not stop within 20s of SIGTERM")
			_ = syscall.Kill(-ctl.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	ctl.expect(t, "ready", 30*time.Second)
	opWaitSocket(t, socket)
	return socket, ctl
}

// logsUntil runs vigil logs until its output has want (or fails after
// 20 s): the workers write their first lines right after they start.
func logsUntil(t *testing.T, socket, want string, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		stdout, stderr, code := opRun(t, nil, append([]string{"logs", "--socket", socket}, args...)...)
		if code != 0 {
			t.Fatalf("vigil logs %v: exit %d: %s", args, code, stderr)
		}
		if strings.Contains(stdout, want) || time.Now().After(deadline) {
			return stdout
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLogsCommand(t *testing.T) {
	socket, ctl := logsCtl(t, "web", "job")

	// Every worker, interleaved; no colour when piped.
	out := logsUntil(t, socket, "job.0 | job tick 3")
	for _, want := range []string{"web.0 | web says hello\n", "web.0 | web warns\n", "job.0 | job says hello\n", "job.0 | job tick 3\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("vigil logs lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour codes in piped output")
	}

	// The streams apart.
	out = logsUntil(t, socket, "warns", "web", "--stream", "stderr")
	if out != "web.0 | web warns\n" {
		t.Errorf("web's stderr: %q", out)
	}
	out = logsUntil(t, socket, "tick", "web.0", "--stream", "stdout", "-n", "2")
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], "web.0 | web tick ") {
		t.Errorf("web.0's last 2 stdout lines: %q", out)
	}

	// JSON, line by line.
	out = logsUntil(t, socket, "hello", "job", "--output", "json", "-n", "0")
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var line control.LogLine
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&line); err != nil || line.Service != "job" || line.PID <= 0 || line.Time.IsZero() {
			t.Fatalf("JSON line %d %q: %+v %v", i, l, line, err)
		}
		if i == 0 && (line.Line != "job says hello" && line.Line != "job warns") {
			t.Errorf("first JSON line %+v", line)
		}
	}

	// A crash: the last line of the process before is in --previous.
	if _, _, code := opRun(t, nil, "logs", "--socket", socket, "web", "--previous"); code != 0 {
		t.Errorf("--previous with no previous process: exit %d", code)
	}
	ctl.cmd.Process.Signal(syscall.SIGHUP)
	ctl.expect(t, "restarted", 30*time.Second)
	out = logsUntil(t, socket, "about to crash", "web", "--previous", "--stream", "stderr", "-n", "1")
	if out != "web.0 | web about to crash\n" {
		t.Errorf("web's previous process's last stderr line: %q", out)
	}

	// Errors: an unknown worker, bad flags.
	if _, stderr, code := opRun(t, nil, "logs", "--socket", socket, "nope"); code != exitUsage || !strings.Contains(stderr, "the services are job, web") {
		t.Errorf("unknown worker: exit %d: %s", code, stderr)
	}
	if _, stderr, code := opRun(t, nil, "logs", "--socket", socket, "--stream", "both"); code != exitUsage || !strings.Contains(stderr, "--stream") {
		t.Errorf("bad --stream: exit %d: %s", code, stderr)
	}
}

// TestLogsFollow: vigil logs -f prints the kept lines, then the new ones,
// across a restart of the worker, until SIGINT, and exits 0.
func TestLogsFollow(t *testing.T) {
	socket, ctl := logsCtl(t, "web")
	logsUntil(t, socket, "hello", "web")
	cmd := exec.Command(vigilBin, "logs", "--socket", socket, "web", "-f", "-n", "1", "--stream", "stdout")
	cmd.Env = append(os.Environ(), "NO_COLOR=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	expect := func(what func(string) bool, desc string) string {
		t.Helper()
		timer := time.NewTimer(30 * time.Second)
		defer timer.Stop()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("vigil logs -f ended before %s", desc)
				}
				if what(l) {
					return l
				}
			case <-timer.C:
				t.Fatalf("vigil logs -f: no %s within 30s", desc)
			}
		}
	}
	first := expect(func(string) bool { return true }, "first line")
	if !strings.HasPrefix(first, "web.0 | web ") {
		t.Fatalf("first line %q", first)
	}
	expect(func(l string) bool { return strings.HasPrefix(l, "web.0 | web tick ") && l != first }, "new tick")
	ctl.cmd.Process.Signal(syscall.SIGHUP)
	expect(func(l string) bool { return l == "web.0 | web says hello" }, "the new process's hello")
	expect(func(l string) bool { return l == "web.0 | web tick 5" }, "the new process's ticks")
	cmd.Process.Signal(syscall.SIGINT)
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("vigil logs -f after SIGINT: %v", err)
	}
}

// TestLogsPrinterColours: on a terminal each worker's name has a colour of
// its own, the same on every line; the line itself is left alone.
func TestLogsPrinterColours(t *testing.T) {
	var buf strings.Builder
	p := &logsPrinter{w: &buf, colour: true}
	m, err := rpc.Parse([]byte(`{"id":3,"lines":[` +
		`{"time":"2025-01-02T03:04:05Z","service":"web","instance":0,"pid":1,"stream":"stdout","line":"a"},` +
		`{"time":"2025-01-02T03:04:05Z","service":"web","instance":1,"pid":2,"stream":"stderr","line":"b"},` +
		`{"time":"2025-01-02T03:04:05Z","service":"web","instance":0,"pid":1,"stream":"stdout","line":"c"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.reply(m); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{
		colourOf("web.0") + "web.0" + ansiReset + " | a",
		colourOf("web.1") + "web.1" + ansiReset + " | b",
		colourOf("web.0") + "web.0" + ansiReset + " | c",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("coloured output %q, want %q", lines, want)
	}
	if colourOf("web.0") == colourOf("web.1") {
		t.Errorf("web.0 and web.1 share a colour")
	}
	m, _ = rpc.Parse([]byte(`{"id":3,"lost":7}`))
	buf.Reset()
	p.reply(m)
	if buf.String() != "vigil: 7 lines lost here: this command did not read them fast enough\n" {
		t.Errorf("lost marker %q", buf.String())
	}
}
