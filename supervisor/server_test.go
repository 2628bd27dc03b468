package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/rpc"
)

func TestTwoWorkersAndAClient(t *testing.T) {
	ts := startServer(t, &Server{}, ListenOptions{})
	_, id1 := register(t, ts.path, map[string]any{"process_id": 101, "name": "web"})
	_, id2 := register(t, ts.path, map[string]any{"process_id": 102, "name": "jobs", "instance": 1})
	client := dial(t, ts.path, nil)
	ctx := ctxT(t)

	st, err := client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Connections) != 2 || st.Connections[0].ConnectionID != id1 || st.Connections[1].ConnectionID != id2 {
		t.Fatalf("status connections: %+v", st.Connections)
	}
	c2 := st.Connections[1]
	state, err := c2.StateMap()
	if err != nil {
		t.Fatal(err)
	}
	if c2.ProcessID != 102 || state["name"] != "jobs" || state["connection_id"] != id2 || state["instance"] != 1.0 {
		t.Errorf("second connection: %+v", c2)
	}

	// Forward with intermediate replies, streamed in order.
	var steps []string
	reply, err := client.Forward(ctx, id2, map[string]any{"do": "progress"}, func(m *rpc.Message) error {
		v, _ := m.Get("step")
		steps = append(steps, string(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := reply.GetString("data"); data != "done" || strings.Join(steps, ",") != "0,1,2" {
		t.Errorf("forward progress: final %s, steps %v", reply, steps)
	}
	// Parameters reach the worker.
	reply, err = client.Forward(ctx, id1, map[string]any{"do": "echo", "value": map[string]int{"x": 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := reply.Get("value"); string(v) != `{"x":1}` {
		t.Errorf("echo: %s", reply)
	}
	// A worker's failure comes back as it was.
	_, err = client.Forward(ctx, id1, map[string]any{"do": "fail"}, nil)
	var re *rpc.RemoteError
	if !errors.As(err, &re) || re.Class != "ArgumentError" || re.Message != "Positive duration is required!" {
		t.Errorf("forwarded failure: %v", err)
	}
	// An operation the worker lacks.
	_, err = client.Forward(ctx, id1, map[string]any{"do": "bogus"}, nil)
	if !errors.As(err, &re) || re.Class != "NoMethodError" || !strings.Contains(re.Message, "bogus") {
		t.Errorf("forwarded unknown operation: %v", err)
	}
}

func TestForwardErrors(t *testing.T) {
	ts := startServer(t, &Server{}, ListenOptions{})
	_, id := register(t, ts.path, map[string]any{"process_id": 7})
	raw := dialRaw(t, ts.path)
	cases := []struct {
		send      string
		wantError string
	}{
		{`{"id":2,"do":"forward","operation":{"do":"thread_dump"}}`, "Missing 'connection_id' parameter"},
		{`{"id":4,"do":"forward","connection_id":"00000000-0000-0000-0000-000000000000","operation":{"do":"thread_dump"}}`, "Connection not found"},
		{`{"id":6,"do":"forward","connection_id":"` + id + `"}`, "Missing 'operation' parameter"},
		{`{"id":8,"do":"forward","connection_id":"` + id + `","operation":{"x":1}}`, "Missing 'do' in 'operation'"},
		{`{"id":10,"do":"forward","connection_id":"` + id + `","operation":"thread_dump"}`, "'operation' must be an object with a 'do'"},
		{`{"id":12,"do":"forward","connection_id":"` + id + `","operation":{"do":"slow"},"timeout":0.05}`, "Forwarded slow timed out after 0.05s"},
	}
	for _, tc := range cases {
		raw.send(tc.send + "\n")
		m := raw.recv(20 * time.Second)
		if m == nil || m["finished"] != true || m["failed"] != true || m["error"] != tc.wantError {
			t.Errorf("%s\n got %v\nwant error %q", tc.send, m, tc.wantError)
		}
		if strings.Contains(tc.send, "connection_id") && m != nil && m["connection_id"] == nil {
			t.Errorf("%s: reply does not echo connection_id: %v", tc.send, m)
		}
	}
	// The timed-out call is not left pending on the worker's connection.
	waitFor(t, "no pending call", func() bool { return ts.Lookup(id).conn.Pending() == 0 })
}

func TestWorkerDiesMidForward(t *testing.T) {
	ts := startServer(t, &Server{}, ListenOptions{})
	cmd, out := startHelper(t, helperCmd(t, "worker", ts.path))
	if got := readLine(t, out); got != "registered" {
		t.Fatalf("worker said %q", got)
	}
	var id string
	waitFor(t, "the worker's registration", func() bool {
		for _, c := range ts.Connections() {
			if c.ProcessID() == cmd.Process.Pid {
				id = c.ID()
				return true
			}
		}
		return false
	})
	client := dial(t, ts.path, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := client.Forward(context.Background(), id, map[string]any{"do": "slow"}, nil)
		errc <- err
	}()
	waitFor(t, "the forwarded call to reach the worker", func() bool {
		c := ts.Lookup(id)
		return c != nil && c.conn.Pending() == 1
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		var re *rpc.RemoteError
		if !errors.As(err, &re) || re.Message != "Connection closed before the worker replied" {
			t.Fatalf("forward to a dying worker: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the caller got no reply when the worker died")
	}
	waitFor(t, "the dead worker's removal", func() bool { return ts.Lookup(id) == nil })
}

func TestCallerLeavesMidForward(t *testing.T) {
	ts := startServer(t, &Server{}, ListenOptions{})
	_, id := register(t, ts.path, map[string]any{"process_id": 9})
	raw := dialRaw(t, ts.path)
	raw.send(`{"id":2,"do":"forward","connection_id":"` + id + `","operation":{"do":"slow"}}` + "\n")
	waitFor(t, "the forwarded call", func() bool { return ts.Lookup(id).conn.Pending() == 1 })
	raw.conn.Close()
	waitFor(t, "the abandoned call to be dropped", func() bool { return ts.Lookup(id).conn.Pending() == 0 })
}

func TestReRegisterReplacesEntry(t *testing.T) {
	rec := &recordingMonitor{}
	ts := startServer(t, &Server{Monitors: []Monitor{rec}}, ListenOptions{})
	raw := dialRaw(t, ts.path)
	raw.send(`{"id":2,"do":"register","state":{"process_id":4242,"name":"raw"}}` + "\n")
	first := raw.recv(10 * time.Second)
	raw.send(`{"id":4,"do":"register"}` + "\n")
	second := raw.recv(10 * time.Second)
	if first["connection_id"] == second["connection_id"] {
		t.Fatal("second register kept the connection id")
	}
	conns := ts.Connections()
	if len(conns) != 1 || conns[0].ID() != second["connection_id"] {
		t.Fatalf("after two registers: %d entries, want only the second", len(conns))
	}
	if st := conns[0].State(); st["name"] != "raw" || st["process_id"] != 4242.0 {
		t.Errorf("state not merged: %v", st)
	}
	raw.conn.Close()
	waitFor(t, "removal", func() bool { return len(ts.Connections()) == 0 })
	want := fmt.Sprintf("+%s -%s +%s -%s", first["connection_id"], first["connection_id"], second["connection_id"], second["connection_id"])
	waitFor(t, "monitor events", func() bool { return rec.events() == want })
}

// recordingMonitor records the order of registrations and removals.
type recordingMonitor struct {
	mu  sync.Mutex
	log []string
}

func (m *recordingMonitor) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (m *recordingMonitor) Register(c *Connection) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = append(m.log, "+"+c.ID())
}
func (m *recordingMonitor) Remove(c *Connection) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = append(m.log, "-"+c.ID())
}
func (m *recordingMonitor) Status(ctx context.Context) (any, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return map[string]any{"recording_monitor": map[string]int{"events": len(m.log)}}, nil
}
func (m *recordingMonitor) events() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.log, " ")
}

// failingMonitor fails in every way a monitor can.
type failingMonitor struct{}

func (failingMonitor) Run(ctx context.Context) error { return errors.New("run failed") }
func (failingMonitor) Register(c *Connection)        { panic("register panicked") }
func (failingMonitor) Remove(c *Connection)          { panic("remove panicked") }
func (failingMonitor) Status(ctx context.Context) (any, error) {
	return nil, errors.New("status failed")
}

func TestFailingMonitorIsContained(t *testing.T) {
	rec := &recordingMonitor{}
	ts := startServer(t, &Server{Monitors: []Monitor{failingMonitor{}, rec}}, ListenOptions{})
	w, id := register(t, ts.path, map[string]any{"process_id": 11})
	client := dial(t, ts.path, nil)
	st, err := client.Status(ctxT(t))
	if err != nil {
		t.Fatalf("status with a failing monitor: %v", err)
	}
	if len(st.Connections) != 1 || st.Connections[0].ConnectionID != id {
		t.Errorf("connections: %+v", st.Connections)
	}
	if len(st.Parts) != 2 {
		t.Fatalf("want an error part and the good monitor's part, got %d parts", len(st.Parts))
	}
	if e, _ := st.Parts[0].Get("error"); !strings.Contains(string(e), `"class":"MonitorError"`) || !strings.Contains(string(e), "status failed") {
		t.Errorf("failing monitor's part: %s", st.Parts[0])
	}
	if st.Part("recording_monitor") == nil {
		t.Errorf("the good monitor's part is missing")
	}
	w.Close()
	waitFor(t, "removal reaching the good monitor", func() bool { return strings.Contains(rec.events(), "-"+id) })
	for _, want := range []string{"register panicked", "remove panicked", "run failed", "status failed"} {
		if !strings.Contains(ts.logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestRestartSignalsParent(t *testing.T) {
	parent, out := startHelper(t, helperCmd(t, "sigwait"))
	if got := readLine(t, out); got != "ready" {
		t.Fatalf("sigwait said %q", got)
	}
	ts := startServer(t, &Server{ParentPID: parent.Process.Pid}, ListenOptions{})
	client := dial(t, ts.path, nil)
	ctx := ctxT(t)
	for _, bad := range []string{"KILL", "SIGSTOP", "9", "nonsense"} {
		err := client.Restart(ctx, bad)
		var re *rpc.RemoteError
		if !errors.As(err, &re) || re.Class != "ArgumentError" || !strings.Contains(re.Message, bad) {
			t.Errorf("restart %q: %v", bad, err)
		}
	}
	raw := dialRaw(t, ts.path)
	raw.send(`{"id":2,"do":"restart","signal":9}` + "\n")
	if m := raw.recv(10 * time.Second); m["failed"] != true {
		t.Errorf("numeric signal accepted: %v", m)
	}
	for _, tc := range []struct{ send, want string }{
		{"USR1", "USR1"}, {"sighup", "HUP"}, {"SIGTERM", "TERM"}, {"", "INT"},
	} {
		if err := client.Restart(ctx, tc.send); err != nil {
			t.Fatalf("restart %q: %v", tc.send, err)
		}
		// The first signal the parent sees is the one asked for: none of the
		// refused ones reached it.
		if got := readLine(t, out); got != tc.want {
			t.Fatalf("restart %q: parent got %s, want %s", tc.send, got, tc.want)
		}
	}
}

func TestSocketFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.ipc")
	l, err := Listen(path, ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	// A live supervisor answers: a second one refuses to start.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{}).Serve(ctx, l) }()
	if _, err := Listen(path, ListenOptions{}); !errors.Is(err, ErrSupervisorRunning) {
		t.Errorf("second Listen: %v, want ErrSupervisorRunning", err)
	}
	cancel()
	<-done
	l.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket file left after a clean shutdown: %v", err)
	}
	// A stale socket (nobody listening) is replaced.
	stale, err := listenStale(path)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := Listen(path, ListenOptions{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v (stale inode %d)", err, stale)
	}
	l2.Close()
	// A file that is not a socket is never removed.
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, ListenOptions{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Errorf("regular file was touched")
	}
	// With a group, the mode is 0660 and the file belongs to that group.
	gid := 65534
	path2 := filepath.Join(dir, "g.ipc")
	l3, err := Listen(path2, ListenOptions{Group: &gid})
	if err != nil {
		t.Fatal(err)
	}
	defer l3.Close()
	fi, _ = os.Stat(path2)
	if fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Gid != uint32(gid) {
		t.Errorf("group socket: mode %v gid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Gid)
	}
}

// listenStale leaves a socket file that nobody listens on, as a killed
// supervisor does.
func listenStale(path string) (uint64, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return 0, err
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		return 0, err
	}
	var st syscall.Stat_t
	err = syscall.Stat(path, &st)
	return st.Ino, err
}

func TestNoSupervisorError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.ipc")
	_, err := Dial(context.Background(), path)
	if !errors.Is(err, ErrNoSupervisor) || !strings.Contains(err.Error(), path) {
		t.Errorf("Dial to nothing: %v", err)
	}
}

func TestManyForwardsLeaveNothingBehind(t *testing.T) {
	ts := startServer(t, &Server{}, ListenOptions{})
	_, id := register(t, ts.path, map[string]any{"process_id": 5})
	client := dial(t, ts.path, nil)
	ctx := ctxT(t)
	// Warm up, then count.
	if _, err := client.Forward(ctx, id, map[string]any{"do": "thread_dump"}, nil); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for i := range 1000 {
		if _, err := client.Forward(ctx, id, map[string]any{"do": "echo", "value": i}, nil); err != nil {
			t.Fatalf("forward %d: %v", i, err)
		}
	}
	waitFor(t, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= before })
	if n := ts.Lookup(id).conn.Pending(); n != 0 {
		t.Errorf("%d forwarded calls left pending on the worker's connection", n)
	}
	if n := client.Conn().Pending(); n != 0 {
		t.Errorf("%d calls left pending on the client", n)
	}
}

func TestServeStopsEverything(t *testing.T) {
	rec := &recordingMonitor{}
	ts := startServer(t, &Server{Monitors: []Monitor{rec}}, ListenOptions{})
	w, _ := register(t, ts.path, map[string]any{"process_id": 5})
	raw := dialRaw(t, ts.path)
	raw.send(`{"id":2,"do":"forward","connection_id":"nope","operation":{"do":"x"}}` + "\n")
	raw.recv(10 * time.Second)
	ts.stop()
	select {
	case <-w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("worker connection still open after Serve returned")
	}
	if m := raw.recv(10 * time.Second); m != nil {
		t.Errorf("raw connection still open: %v", m)
	}
	if _, err := os.Stat(ts.path); !os.IsNotExist(err) {
		t.Errorf("socket file left behind")
	}
	// Serve waited for the removal to reach the monitor.
	if ev := rec.events(); !strings.HasPrefix(ev, "+") || !strings.Contains(ev, " -") {
		t.Errorf("monitor events after stop: %q", ev)
	}
}

func TestOnlyTheParentRegistersAsController(t *testing.T) {
	children := rpc.Handlers{"children": func(ctx context.Context, call *rpc.Call) error {
		return call.Finish(map[string]any{"children": []map[string]any{{"service": "web", "pid": 42}}})
	}}
	// This test process is the peer: as the server's parent it may register
	// as the controller, and status relays its children.
	ts := startServer(t, &Server{ParentPID: os.Getpid()}, ListenOptions{})
	ctrl := dial(t, ts.path, children)
	if _, err := ctrl.Register(ctxT(t), map[string]any{"role": "controller", "process_id": os.Getpid()}); err != nil {
		t.Fatalf("the parent registering as controller: %v", err)
	}
	st, err := dial(t, ts.path, nil).Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(st.Part("children")); got != `[{"pid":42,"service":"web"}]` {
		t.Errorf("children relayed: %s", got)
	}

	// Any other process is refused, and nothing is relayed for it.
	ts2 := startServer(t, &Server{ParentPID: 1}, ListenOptions{})
	impostor := dial(t, ts2.path, children)
	_, err = impostor.Register(ctxT(t), map[string]any{"role": "controller"})
	var re *rpc.RemoteError
	if !errors.As(err, &re) || re.Class != "PermissionError" || !strings.Contains(re.Message, "only the controller") {
		t.Errorf("an impostor registering as controller: %v", err)
	}
	if n := len(ts2.Connections()); n != 0 {
		t.Errorf("the impostor was registered")
	}
}
