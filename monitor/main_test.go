package monitor

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/internal/testutil"
	"github.com/vigild/vigil/procmetrics"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// helperEnv names the helper command a re-executed test binary plays.
const helperEnv = "VIGIL_MONITOR_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		goleak.VerifyTestMain(m)
	case "worker":
		os.Exit(helperWorker(os.Args[1:]))
	case "idle":
		fmt.Println("ready")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// growth is what a worker helper does with its memory: start MiB at once,
// then step MiB every every, up to top MiB.
type growth struct {
	start, step, top int
	every            time.Duration
	ignoreInt        bool
}

func (g growth) args() []string {
	a := []string{strconv.Itoa(g.start), strconv.Itoa(g.step), strconv.Itoa(g.top), g.every.String()}
	if g.ignoreInt {
		a = append(a, "ignoreint")
	}
	return a
}

// arena is memory mapped outside the Go heap: the race detector keeps no
// shadow of it, so the private size grows by what is touched, race or not.
var arena [][]byte

// touch maps n MiB and writes a byte in each page, making it private dirty.
func touch(n int) {
	b, err := unix.Mmap(-1, 0, n<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		panic(err)
	}
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	arena = append(arena, b)
}

// helperWorker: SOCKET SERVICE START STEP TOP EVERY [ignoreint]. It
// registers, serves memory_sample and memory_dump, grows as told and stays
// until its connection ends.
func helperWorker(args []string) int {
	if len(args) < 6 {
		fmt.Fprintln(os.Stderr, "worker: want SOCKET SERVICE START STEP TOP EVERY [ignoreint]")
		return 2
	}
	start, _ := strconv.Atoi(args[2])
	step, _ := strconv.Atoi(args[3])
	top, _ := strconv.Atoi(args[4])
	every, _ := time.ParseDuration(args[5])
	if len(args) > 6 && args[6] == "ignoreint" {
		signal.Ignore(syscall.SIGINT)
	}
	handlers := rpc.Handlers{
		"memory_sample": func(ctx context.Context, call *rpc.Call) error {
			if args[1] == "dumponly" {
				return rpc.Errorf("NoMethodError", "undefined method `do_memory_sample'")
			}
			return call.Finish(map[string]any{"data": map[string]any{"total_retained": map[string]int{"size": 4096}}, "format": "json"})
		},
		"memory_dump": func(ctx context.Context, call *rpc.Call) error {
			return call.Finish(map[string]any{"data": "heap dump", "format": "text"})
		},
	}
	ctx := context.Background()
	c, err := supervisor.DialOptions(ctx, args[0], supervisor.ClientOptions{Handlers: handlers})
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	if _, err := c.Register(ctx, map[string]any{"process_id": os.Getpid(), "name": args[1]}); err != nil {
		fmt.Println("register:", err)
		return 1
	}
	// Said before growing: the monitor may stop a worker while it grows.
	fmt.Println("registered")
	if start > 0 {
		touch(start)
	}
	size := start
	for size+step <= top && step > 0 {
		select {
		case <-c.Done():
			return 0
		case <-time.After(every):
		}
		touch(step)
		size += step
	}
	<-c.Done()
	return 0
}

// child is a helper process with its exit awaited in the background.
type child struct {
	cmd  *exec.Cmd
	out  *bufio.Reader
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

// startHelper starts the test binary as a helper; it is killed and reaped
// when the test ends.
func startHelper(t testing.TB, name string, args ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Our own pipe, which Wait leaves alone: the test reads it while the
	// background Wait runs.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	c := &child{cmd: cmd, out: bufio.NewReader(r), done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		<-c.done
		r.Close()
	})
	return c
}

// startWorker starts a worker helper registering on socket as service.
func startWorker(t testing.TB, socket, service string, g growth) *child {
	t.Helper()
	c := startHelper(t, "worker", append([]string{socket, service}, g.args()...)...)
	c.expect(t, "registered")
	return c
}

// expect waits for the helper to print want (the first line).
func (c *child) expect(t testing.TB, want string) {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s, _ := c.out.ReadString('\n')
		ch <- strings.TrimSpace(s)
	}()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("helper said %q, want %q", got, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("helper said nothing for 20s (want %q)", want)
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited waits for the helper to exit and returns the signal that ended it
// (0 when it exited by itself).
func (c *child) exited(t testing.TB, within time.Duration) syscall.Signal {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(within):
		t.Fatalf("process %d still running after %v", c.pid(), within)
	}
	ws := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// alive reports whether the helper is still running.
func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// baseline is the private size of an idle helper, measured once: the
// limits of the tests are set above it.
var baseline = sync.OnceValues(func() (uint64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=idle")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		return 0, err
	}
	time.Sleep(200 * time.Millisecond)
	m, err := procmetrics.DefaultFS().MemoryOf(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	return m.PrivateSize(), nil
})

// base returns the baseline private size in MiB, rounded up, plus 8 MiB for
// the connection and the growth of the runtime.
func base(t testing.TB) uint64 {
	t.Helper()
	b, err := baseline()
	if err != nil {
		t.Fatal(err)
	}
	return b>>20 + 8
}

const mib = 1 << 20

// testServer is a supervisor serving the monitors on a real socket.
type testServer struct {
	path string
	logs *syncBuffer
	stop func()
}

func startServer(t testing.TB, monitors ...supervisor.Monitor) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	path := filepath.Join(t.TempDir(), "supervisor.ipc")
	l, err := supervisor.Listen(path, supervisor.ListenOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	// The test process plays the controller, the supervisor's parent.
	srv := &supervisor.Server{Monitors: monitors, Logger: logger, ParentPID: os.Getpid()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	var once sync.Once
	ts := &testServer{path: path, logs: logs}
	ts.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			l.Close()
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

// testLogger returns a logger writing to a buffer.
func testLogger() (*slog.Logger, *syncBuffer) {
	b := &syncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a buffer safe for concurrent writers and readers.
type syncBuffer = testutil.Buffer
