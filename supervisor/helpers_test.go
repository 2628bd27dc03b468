package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigild/vigil/internal/testutil"
	"github.com/vigild/vigil/rpc"
)

// helperEnv names the helper command a re-executed test binary plays.
const helperEnv = "VIGIL_SUPERVISOR_TEST_HELPER"

// helpers are the commands the test binary plays when re-executed, as in
// os/exec's tests: real processes for workers, parents and other users.
var helpers = map[string]func(args []string) int{
	// worker SOCKET: registers and serves "echo" and "slow" until killed.
	"worker": helperWorker,
	// sigwait: prints "ready", then the name of each signal it receives.
	"sigwait": helperSigwait,
	// dial SOCKET: connects, registers, prints the outcome.
	"dial": helperDial,
}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		os.Exit(helpers[name](os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

func helperWorker(args []string) int {
	ctx := context.Background()
	c, err := DialOptions(ctx, args[0], ClientOptions{Handlers: workerHandlers()})
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	if _, err := c.Register(ctx, map[string]any{"process_id": os.Getpid(), "name": "helper"}); err != nil {
		fmt.Println("register:", err)
		return 1
	}
	fmt.Println("registered")
	<-c.Done()
	return 0
}

func helperSigwait(args []string) int {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGQUIT)
	fmt.Println("ready")
	for s := range ch {
		fmt.Println(SignalName(s.(syscall.Signal)))
	}
	return 0
}

func helperDial(args []string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, args[0])
	if err != nil {
		fmt.Println("dial error:", err)
		return 0
	}
	defer c.Close()
	id, err := c.Register(ctx, map[string]any{"process_id": os.Getpid()})
	if err != nil {
		fmt.Println("register error:", err)
		return 0
	}
	fmt.Println("registered", id)
	return 0
}

// workerHandlers are the operations of the test workers.
func workerHandlers() rpc.Handlers {
	return rpc.Handlers{
		"echo": func(ctx context.Context, call *rpc.Call) error {
			v, _ := call.Message().Get("value")
			return call.Finish(map[string]json.RawMessage{"value": v})
		},
		"progress": func(ctx context.Context, call *rpc.Call) error {
			for i := range 3 {
				if err := call.Reply(map[string]int{"step": i}); err != nil {
					return err
				}
			}
			return call.Finish(map[string]string{"data": "done"})
		},
		"thread_dump": func(ctx context.Context, call *rpc.Call) error {
			return call.Finish(map[string]string{"data": "goroutine 1 [running]:\n"})
		},
		"slow": func(ctx context.Context, call *rpc.Call) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Minute):
				return call.Finish(nil)
			}
		},
		"fail": func(ctx context.Context, call *rpc.Call) error {
			return rpc.ArgumentError("Positive duration is required!")
		},
	}
}

// helperCmd returns a command that re-executes the test binary as a helper.
func helperCmd(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	// atexit_sleep_ms=0: a race-enabled helper otherwise lingers 1 s at exit.
	cmd.Env = append(os.Environ(), helperEnv+"="+name, "GORACE=atexit_sleep_ms=0")
	return cmd
}

// startHelper starts a helper and returns it with a reader of its stdout;
// the helper is killed and reaped when the test ends.
func startHelper(t testing.TB, cmd *exec.Cmd) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewReader(out)
}

// readLine reads one line of a helper's output, failing after a while.
func readLine(t testing.TB, r *bufio.Reader) string {
	t.Helper()
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := r.ReadString('\n')
		ch <- result{s, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("reading helper output: %v (got %q)", res.err, res.s)
		}
		return strings.TrimSpace(res.s)
	case <-time.After(20 * time.Second):
		t.Fatal("helper said nothing for 20s")
		return ""
	}
}

// testServer is a Server serving on a real socket in a temporary directory.
type testServer struct {
	*Server
	path string
	logs *syncBuffer
	stop func()
}

func startServer(t testing.TB, srv *Server, opts ListenOptions) *testServer {
	t.Helper()
	return startServerAt(t, srv, opts, filepath.Join(t.TempDir(), "supervisor.ipc"))
}

func startServerAt(t testing.TB, srv *Server, opts ListenOptions, path string) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if srv.Logger == nil {
		srv.Logger = logger
	}
	opts.Logger = logger
	l, err := Listen(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	var once sync.Once
	ts := &testServer{Server: srv, path: path, logs: logs}
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

// dial connects a client (an operator, or an in-process worker when
// handlers are given) and closes it when the test ends.
func dial(t testing.TB, path string, handlers rpc.Handlers) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := DialOptions(ctx, path, ClientOptions{Handlers: handlers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// register connects an in-process worker and registers it.
func register(t testing.TB, path string, state map[string]any) (*Client, string) {
	t.Helper()
	c := dial(t, path, workerHandlers())
	id, err := c.Register(ctxT(t), state)
	if err != nil {
		t.Fatal(err)
	}
	return c, id
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a buffer safe for concurrent writers and readers.
type syncBuffer = testutil.Buffer

// rawClient speaks raw lines to the socket, as the transcripts' socat did.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t testing.TB, path string) *rawClient {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// recv reads one reply, or returns nil at the end of the connection.
func (c *rawClient) recv(timeout time.Duration) map[string]any {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		c.t.Fatalf("reply %q: %v", line, err)
	}
	return m
}
