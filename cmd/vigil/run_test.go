package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/control"
	"github.com/vigild/vigil/internal/testutil"
	"github.com/vigild/vigil/supervisor"
	"github.com/vigild/vigil/worker"
)

func init() {
	// run-worker: a supervised worker: registers with the supervisor, says
	// ready, and runs until SIGINT or SIGTERM.
	helpers["run-worker"] = func(args []string) int {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		n, err := worker.NewNotifier(os.Getenv, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		w, err := worker.Start(ctx, worker.Options{MinPause: 20 * time.Millisecond, MaxPause: 200 * time.Millisecond})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		_ = n.Ready()
		<-ctx.Done()
		_ = n.Stopping()
		w.Wait()
		return 0
	}
}

// runner is a `vigil run` under test, with its configuration directory.
type runner struct {
	t      *testing.T
	dir    string
	config string
	socket string
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan error
}

// lockedBuffer is a buffer safe for concurrent writers and readers.
type lockedBuffer = testutil.Buffer

// workerConfig is a vigil.toml with count run-worker helpers in service web.
func workerConfig(t *testing.T, count int, extra string) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`
[services.web]
command = [%q]
count = %d
graceful_stop = "5s"
startup_timeout = "30s"
restart_delay = "20ms"
env = { %s = "run-worker", GORACE = "atexit_sleep_ms=0" }
%s`, exe, count, helperEnv, extra)
}

// startRun writes the config and starts `vigil run` on it.
func startRun(t *testing.T, toml string, env ...string) *runner {
	t.Helper()
	config := filepath.Join(t.TempDir(), "vigil.toml")
	if err := os.WriteFile(config, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return startRunFile(t, config, filepath.Join(filepath.Dir(config), "supervisor.ipc"), env...)
}

// startRunFile starts `vigil run` on a config file whose supervisor
// listens on socket.
func startRunFile(t *testing.T, config, socket string, env ...string) *runner {
	t.Helper()
	r := &runner{t: t, dir: filepath.Dir(config), config: config, socket: socket,
		out: &lockedBuffer{}, exited: make(chan error, 1)}
	r.cmd = exec.Command(vigilBin, "run", "-c", r.config)
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- r.cmd.Wait() }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("vigil run output:\n%s", r.out.String())
		}
	})
	return r
}

// tree is the state of a running tree, from one status call.
type tree struct {
	children    []control.Child
	connections []supervisor.ConnectionInfo
}

func (tr tree) pids(service string, state string) []int {
	var pids []int
	for _, c := range tr.children {
		if c.Service == service && (state == "" || c.State == state) {
			pids = append(pids, c.PID)
		}
	}
	slices.Sort(pids)
	return pids
}

// registered reports the pids of the registered workers (not the controller).
func (tr tree) registered() []int {
	var pids []int
	for _, c := range tr.connections {
		st, _ := c.StateMap()
		if st["role"] == nil {
			pids = append(pids, c.ProcessID)
		}
	}
	slices.Sort(pids)
	return pids
}

// waitExit waits for vigil run to exit 0 after what was done to it.
func (r *runner) waitExit(after string) {
	r.t.Helper()
	select {
	case err := <-r.exited:
		r.exited <- err // for the cleanup
		if err != nil {
			r.t.Errorf("vigil run after %s: %v", after, err)
		}
	case <-time.After(30 * time.Second):
		r.t.Fatalf("vigil run did not stop after %s", after)
	}
}

// status asks the supervisor; it returns false while it cannot.
func (r *runner) status() (tree, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := supervisor.Dial(ctx, r.socket)
	if err != nil {
		return tree{}, false
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return tree{}, false
	}
	var tr tree
	tr.connections = st.Connections
	raw := st.Part("children")
	if raw == nil || json.Unmarshal(raw, &tr.children) != nil {
		return tree{}, false
	}
	return tr, true
}

// dial connects to the run's supervisor, failing the test if it cannot;
// the client is closed when the test ends.
func (r *runner) dial(ctx context.Context) *supervisor.Client {
	r.t.Helper()
	c, err := supervisor.Dial(ctx, r.socket)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	return c
}

// rawStatus is one status call, failing the test if it cannot be made.
func (r *runner) rawStatus(ctx context.Context) *supervisor.Status {
	r.t.Helper()
	c := r.dial(ctx)
	st, err := c.Status(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// waitTree polls status until cond holds.
func (r *runner) waitTree(what string, cond func(tree) bool) tree {
	r.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		if tr, ok := r.status(); ok && cond(tr) {
			return tr
		}
		select {
		case err := <-r.exited:
			r.exited <- err // for the cleanup
			r.t.Fatalf("vigil run exited (%v) while waiting for %s", err, what)
		default:
		}
		if time.Now().After(deadline) {
			tr, _ := r.status()
			r.t.Fatalf("timed out waiting for %s; last tree: %+v", what, tr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// allUp: n ready web workers, all registered, and the supervisor ready.
func allUp(n int) func(tree) bool {
	return func(tr tree) bool {
		ready := tr.pids("web", "ready")
		return len(ready) == n && len(tr.pids("web", "")) == n &&
			slices.Equal(tr.registered(), ready) && len(tr.pids(SupervisorService, "ready")) == 1
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil {
		return false
	}
	// A zombie still answers kill 0: look at its state.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func TestRunKeepsWorkersAliveAndStopsCleanly(t *testing.T) {
	r := startRun(t, workerConfig(t, 3, ""))
	tr := r.waitTree("3 ready, registered workers", allUp(3))
	sup := tr.pids(SupervisorService, "")[0]
	web := tr.pids("web", "")

	// A killed worker comes back with a new pid, ready and registered.
	if err := syscall.Kill(web[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tr = r.waitTree("the killed worker's replacement", func(tr tree) bool {
		return allUp(3)(tr) && !slices.Contains(tr.pids("web", ""), web[1])
	})
	web = tr.pids("web", "")

	// A killed supervisor comes back; no worker restarts, all re-register.
	if err := syscall.Kill(sup, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tr = r.waitTree("a new supervisor with every worker registered again", func(tr tree) bool {
		s := tr.pids(SupervisorService, "ready")
		return len(s) == 1 && s[0] != sup && allUp(3)(tr)
	})
	if got := tr.pids("web", ""); !slices.Equal(got, web) {
		t.Errorf("workers restarted with the supervisor: %v, then %v", web, got)
	}
	all := append(tr.pids("web", ""), tr.pids(SupervisorService, "")...)

	// SIGTERM: everything stops, nothing is left, vigil exits 0.
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.waitExit("SIGTERM")
	for _, pid := range all {
		if alive(pid) {
			t.Errorf("process %d outlived vigil run", pid)
		}
	}
	if _, err := os.Stat(r.socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestRunReloadBlueGreen(t *testing.T) {
	r := startRun(t, workerConfig(t, 2, ""))
	tr := r.waitTree("2 ready workers", allUp(2))
	old := tr.pids("web", "")
	sup := tr.pids(SupervisorService, "")

	// Watch that web never has zero ready workers during the swap.
	stop := make(chan struct{})
	gaps := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				close(gaps)
				return
			default:
			}
			if tr, ok := r.status(); ok && len(tr.pids("web", "ready")) == 0 {
				select {
				case gaps <- fmt.Sprintf("no ready web worker: %+v", tr.children):
				default:
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	// The reload applies the configuration by difference: web's spec
	// changes, so web is replaced blue/green; the supervisor is not.
	if err := os.WriteFile(r.config, []byte(workerConfig(t, 2, `stable_after = "9s"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	tr = r.waitTree("every web pid replaced", func(tr tree) bool {
		cur := tr.pids("web", "")
		for _, p := range old {
			if slices.Contains(cur, p) {
				return false
			}
		}
		return allUp(2)(tr)
	})
	close(stop)
	for g := range gaps {
		t.Error(g)
	}
	if got := tr.pids(SupervisorService, ""); !slices.Equal(got, sup) {
		t.Errorf("the supervisor was restarted by the reload: %v, then %v", sup, got)
	}

	// The same configuration again: nothing differs, nothing restarts.
	cur := tr.pids("web", "")
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the second reload done", func() bool { return strings.Count(r.out.String(), "reload done") == 2 })
	if tr, _ := r.status(); !slices.Equal(tr.pids("web", "ready"), cur) {
		t.Errorf("an unchanged configuration restarted workers: %v, then %v", cur, tr.pids("web", "ready"))
	}

	// A broken configuration: the reload is refused, the workers stay.
	if err := os.WriteFile(r.config, []byte("[services.web]\ncommand = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(r.out.String(), "reload refused") {
		if time.Now().After(deadline) {
			t.Fatal("the broken configuration's refusal was not logged")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(r.out.String(), "services.web.command") {
		t.Errorf("the refusal does not name the key")
	}
	if tr, _ := r.status(); !slices.Equal(tr.pids("web", "ready"), cur) {
		t.Errorf("workers changed after a refused reload: %v, then %v", cur, tr.pids("web", "ready"))
	}
}

func TestRunRestartThroughSupervisor(t *testing.T) {
	r := startRun(t, workerConfig(t, 1, ""))
	r.waitTree("the worker", allUp(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := r.dial(ctx)
	// The original's restart task: SIGINT to the controller, which stops.
	if err := c.Restart(ctx, "INT"); err != nil {
		t.Fatal(err)
	}
	r.waitExit("restart INT")
}

func TestRunBadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vigil.toml")
	if err := os.WriteFile(path, []byte("[services.web]\ncommand = [\"x\"]\ncount = -2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(vigilBin, "run", "-c", path).CombinedOutput()
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != exitUsage {
		t.Fatalf("exit: %v, want %d\n%s", err, exitUsage, out)
	}
	if want := path + ":3: services.web.count"; !strings.Contains(string(out), want) {
		t.Errorf("output %q does not name %q", out, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "supervisor.ipc")); !os.IsNotExist(err) {
		t.Errorf("something started: %v", err)
	}
}

func TestRunNotifiesSystemdAndKubernetes(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 8192)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(buf[:n]))
			mu.Unlock()
		}
	}()
	seen := func(want string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			if strings.Contains(g, want) {
				return true
			}
		}
		return false
	}
	r := startRun(t, workerConfig(t, 1, ""), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	r.waitTree("the worker", allUp(1))
	waitUntil(t, "READY=1 and the status", func() bool { return seen("READY=1") && seen("STATUS=Running with 2 children.") })
	waitUntil(t, "WATCHDOG=1", func() bool { return seen("WATCHDOG=1") })
	_ = r.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "RELOADING=1", func() bool { return seen("RELOADING=1") })
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	waitUntil(t, "STOPPING=1", func() bool { return seen("STOPPING=1") })
	conn.Close()
	<-done

	// NOTIFY_LOG: the JSON lines a Kubernetes probe reads.
	logFile := filepath.Join(t.TempDir(), "notify.log")
	r2 := startRun(t, workerConfig(t, 1, ""), "NOTIFY_LOG="+logFile)
	r2.waitTree("the worker", allUp(1))
	waitUntil(t, "a ready line in NOTIFY_LOG", func() bool {
		f, err := os.Open(logFile)
		if err != nil {
			return false
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			var m map[string]any
			if json.Unmarshal(s.Bytes(), &m) == nil && m["ready"] == true && m["status"] == "Running with 2 children." {
				return true
			}
		}
		return false
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func TestRunRestartChildrenReply(t *testing.T) {
	r := startRun(t, workerConfig(t, 2, ""))
	tr := r.waitTree("2 workers", allUp(2))
	var controller string
	for _, c := range tr.connections {
		if st, _ := c.StateMap(); st["role"] == "controller" {
			controller = c.ConnectionID
		}
	}
	if controller == "" {
		t.Fatal("the controller is not registered")
	}
	var web0, web1 int
	for _, c := range tr.children {
		if c.Service == "web" && c.Instance == 0 {
			web0 = c.PID
		} else if c.Service == "web" {
			web1 = c.PID
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := r.dial(ctx)
	reply, err := c.Forward(ctx, controller, map[string]any{"do": "restart_children", "service": "web", "instance": 0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Restarted, Pids []int }
	if err := reply.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Restarted, []int{web0}) || len(got.Pids) != 1 || got.Pids[0] == web0 {
		t.Errorf("restart_children web.0: %s (web.0 was %d)", reply, web0)
	}
	tr = r.waitTree("web.0 replaced", allUp(2))
	if !slices.Contains(tr.pids("web", ""), web1) {
		t.Errorf("web.1 (%d) was restarted too: %v", web1, tr.pids("web", ""))
	}
	_, err = c.Forward(ctx, controller, map[string]any{"do": "restart_children", "service": "nope"}, nil)
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("restart_children of an unknown service: %v", err)
	}
}

// TestRunSignals: every signal the supervisor's restart may send does what
// vigil run's help says: USR1 logs the children, USR2 reloads (a changed service blue/green),
// QUIT stops gracefully.
func TestRunSignals(t *testing.T) {
	r := startRun(t, workerConfig(t, 1, ""))
	tr := r.waitTree("the worker", allUp(1))
	old := tr.pids("web", "")[0]
	if err := r.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the children logged", func() bool {
		return containsAll(r.out.String(), "msg=child name=web.0 pid="+fmt.Sprint(old), "state=ready")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := r.dial(ctx)
	if err := os.WriteFile(r.config, []byte(workerConfig(t, 1, `stable_after = "9s"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, "USR2"); err != nil {
		t.Fatal(err)
	}
	tr = r.waitTree("web.0 replaced blue/green", func(tr tree) bool {
		return allUp(1)(tr) && !slices.Contains(tr.pids("web", ""), old)
	})
	all := append(tr.pids("web", ""), tr.pids(SupervisorService, "")...)
	if err := c.Restart(ctx, "QUIT"); err != nil {
		t.Fatal(err)
	}
	r.waitExit("QUIT")
	for _, pid := range all {
		if alive(pid) {
			t.Errorf("process %d outlived vigil run", pid)
		}
	}
}

// TestRunSurvivesClosedOutput: vigil run whose output pipe is closed keeps
// running its workers instead of dying of SIGPIPE.
func TestRunSurvivesClosedOutput(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "vigil.toml")
	if err := os.WriteFile(config, []byte(workerConfig(t, 1, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(vigilBin, "run", "-c", config)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	r := &runner{t: t, dir: dir, config: config, socket: filepath.Join(dir, "supervisor.ipc"), cmd: cmd, out: &lockedBuffer{}, exited: exited}
	r.waitTree("the worker", allUp(1))
	out.Close() // the reader goes away
	tr := r.waitTree("the worker", allUp(1))
	// Make vigil write: kill the worker, which is logged and replaced.
	old := tr.pids("web", "")[0]
	_ = syscall.Kill(old, syscall.SIGKILL)
	r.waitTree("the replacement", func(tr tree) bool { return allUp(1)(tr) && !slices.Contains(tr.pids("web", ""), old) })
	select {
	case err := <-exited:
		t.Fatalf("vigil run died with its output closed: %v", err)
	default:
	}
}

func TestRunWithoutConfig(t *testing.T) {
	cmd := exec.Command(vigilBin, "run")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != exitUsage {
		t.Fatalf("exit: %v, want %d\n%s", err, exitUsage, out)
	}
	if !containsAll(string(out), "no configuration at vigil.toml", "--config FILE") {
		t.Errorf("output %q does not say how to give a configuration", out)
	}
}
