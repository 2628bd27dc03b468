package worker_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/vigild/vigil/internal/testutil"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
	"github.com/vigild/vigil/worker"
	"github.com/vigild/vigil/worker/workertest"
)

// testLogger writes to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// socketDir returns a directory short enough for Unix socket paths.
func socketDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "vigil-w")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// runSupervisor serves a real supervisor on path until the returned stop
// function is called (also at cleanup).
func runSupervisor(t *testing.T, path string) (stop func()) {
	t.Helper()
	l, err := supervisor.Listen(path, supervisor.ListenOptions{})
	if err != nil {
		t.Fatalf("supervisor listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := &supervisor.Server{}
	go func() { done <- srv.Serve(ctx, l) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("supervisor serve: %v", err)
			}
			// Serve can return while the Close it started in another
			// goroutine is still under way (the socket still open, the file
			// still there); Close again waits for that one to finish.
			l.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

func dialSupervisor(t *testing.T, path string) *supervisor.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := supervisor.Dial(ctx, path)
	if err != nil {
		t.Fatalf("dial supervisor: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// helperProcess is a helper worker process.
type helperProcess struct {
	cmd    *exec.Cmd
	notes  *workertest.Notifications
	stderr *lockedBuffer
	waited chan error
}

// lockedBuffer is a buffer safe for concurrent writers and readers.
type lockedBuffer = testutil.Buffer

// startHelper starts the test binary as a helper worker connected to the
// supervisor at socket, with a readiness pipe as vigil gives. At cleanup it
// is sent SIGTERM and must exit 0 with no panic in its output.
func startHelper(t *testing.T, socket string, instance int) *helperProcess {
	t.Helper()
	notes := workertest.NewNotifyPipe(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		helperEnv+"=worker",
		worker.EnvSupervisorSocket+"="+socket,
		worker.EnvService+"=helper",
		fmt.Sprintf("%s=%d", worker.EnvInstance, instance),
		notes.Env(),
	)
	cmd.ExtraFiles = []*os.File{notes.ChildFile()}
	h := &helperProcess{cmd: cmd, notes: notes, stderr: &lockedBuffer{}, waited: make(chan error, 1)}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	notes.CloseChildFile()
	go func() { h.waited <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("helper %d: %v\n%s", cmd.Process.Pid, err, h.stderr)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := notes.WaitReady(ctx); err != nil {
		t.Fatalf("helper never reported ready: %v\n%s", err, h.stderr)
	}
	return h
}

// stop sends SIGTERM and checks a clean exit.
func (h *helperProcess) stop() error {
	if h.cmd.ProcessState == nil {
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
	}
	var err error
	select {
	case err = <-h.waited:
		h.waited <- err
	case <-time.After(20 * time.Second):
		h.cmd.Process.Kill()
		err = <-h.waited
		h.waited <- err
		return fmt.Errorf("did not exit on SIGTERM: %v", err)
	}
	if err != nil {
		return fmt.Errorf("exit: %w", err)
	}
	if s := h.stderr.String(); strings.Contains(s, "panic") || strings.Contains(s, "DATA RACE") {
		return errors.New("panic or race in output")
	}
	return nil
}

func (h *helperProcess) pid() int { return h.cmd.Process.Pid }

// waitRegistered polls status until a connection of pid other than the
// ones in skip is listed, and returns its id.
func waitRegistered(t *testing.T, c *supervisor.Client, pid int, skip ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.Status(ctx)
		cancel()
		if err != nil {
			t.Fatalf("status: %v", err)
		}
	next:
		for _, conn := range st.Connections {
			if conn.ProcessID == pid {
				for _, s := range skip {
					if s == conn.ConnectionID {
						continue next
					}
				}
				return conn.ConnectionID
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d did not register within 20s", pid)
	return ""
}

func forward(t *testing.T, c *supervisor.Client, id string, op map[string]any, onReply func(*rpc.Message) error) *rpc.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reply, err := c.Forward(ctx, id, op, onReply)
	if err != nil {
		t.Fatalf("forward %v: %v", op["do"], err)
	}
	return reply
}

func decodeBinary(t *testing.T, reply *rpc.Message) []byte {
	t.Helper()
	if enc, _ := reply.GetString("encoding"); enc != "base64" {
		t.Fatalf("encoding = %q, want base64: %.200s", enc, reply)
	}
	s, _ := reply.GetString("data")
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("data: %v", err)
	}
	return b
}

func hasFrame(p *profile.Profile, fn string, s *profile.Sample) bool {
	for _, l := range s.Location {
		for _, ln := range l.Line {
			if ln.Function != nil && strings.HasSuffix(ln.Function.Name, fn) {
				return true
			}
		}
	}
	return false
}

// duringWindow calls op on the worker while call's window is open: once
// the "started" intermediate reply arrives, op is forwarded from another
// goroutine; the result of op is returned after the call ends.
func duringWindow(t *testing.T, c *supervisor.Client, id string, call, op map[string]any) (*rpc.Message, *rpc.Message) {
	t.Helper()
	var wg sync.WaitGroup
	var opReply *rpc.Message
	var opErr error
	started := false
	reply := forward(t, c, id, call, func(m *rpc.Message) error {
		if m.GetBool("started") && !started {
			started = true
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				opReply, opErr = c.Forward(ctx, id, op, nil)
			})
		}
		return nil
	})
	wg.Wait()
	if !started {
		t.Fatalf("%v: no started reply", call["do"])
	}
	if opErr != nil {
		t.Fatalf("%v during %v: %v", op["do"], call["do"], opErr)
	}
	return reply, opReply
}

func TestEndToEndDiagnostics(t *testing.T) {
	socket := filepath.Join(socketDir(t), "supervisor.ipc")
	runSupervisor(t, socket)
	c := dialSupervisor(t, socket)
	h := startHelper(t, socket, 0)
	id := waitRegistered(t, c, h.pid())

	t.Run("registered state", func(t *testing.T) {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, conn := range st.Connections {
			if conn.ConnectionID == id {
				state, err := conn.StateMap()
				if err != nil {
					t.Fatal(err)
				}
				if state["name"] != "helper" || state["instance"] != float64(0) || state["role"] != "helper" {
					t.Errorf("state = %v", state)
				}
				return
			}
		}
		t.Errorf("connection %s not in status", id)
	})

	t.Run("custom operation", func(t *testing.T) {
		reply := forward(t, c, id, map[string]any{"do": "ping"}, nil)
		if !reply.GetBool("pong") {
			t.Errorf("ping reply = %s", reply)
		}
	})

	t.Run("thread_dump", func(t *testing.T) {
		reply := forward(t, c, id, map[string]any{"do": "thread_dump"}, nil)
		data, _ := reply.GetString("data")
		if !strings.Contains(data, "worker_test.distinctiveParkedGoroutine") {
			t.Errorf("thread dump lacks the parked goroutine:\n%.2000s", data)
		}
		if !strings.Contains(data, "goroutine ") {
			t.Errorf("not a goroutine dump: %.200s", data)
		}
	})

	t.Run("memory_dump", func(t *testing.T) {
		reply := forward(t, c, id, map[string]any{"do": "memory_dump"}, nil)
		p, err := profile.ParseData(decodeBinary(t, reply))
		if err != nil {
			t.Fatalf("heap profile: %v", err)
		}
		for _, s := range p.Sample {
			if hasFrame(p, "worker_test.allocateRetainedHeapSite", s) {
				return
			}
		}
		t.Errorf("heap profile has no sample from allocateRetainedHeapSite (%d samples)", len(p.Sample))
	})

	t.Run("memory_dump to path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "heap.pprof")
		reply := forward(t, c, id, map[string]any{"do": "memory_dump", "path": path}, nil)
		if got, _ := reply.GetString("path"); got != path {
			t.Errorf("reply = %s", reply)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
		}
		f, _ := os.Open(path)
		defer f.Close()
		if _, err := profile.Parse(f); err != nil {
			t.Errorf("written profile: %v", err)
		}
	})

	t.Run("memory_sample", func(t *testing.T) {
		reply, leak := duringWindow(t, c, id,
			map[string]any{"do": "memory_sample", "duration": 2, "stream": true},
			map[string]any{"do": "leak"})
		if !leak.Has("leaked") {
			t.Fatalf("leak reply = %s", leak)
		}
		var s worker.MemorySample
		if err := reply.DecodeField("data", &s); err != nil {
			t.Fatal(err)
		}
		find := func(fn string) *worker.SiteAmount {
			for i := range s.ByFunction {
				if strings.HasSuffix(s.ByFunction[i].Name, fn) {
					return &s.ByFunction[i]
				}
			}
			return nil
		}
		leakSite := find("worker_test.leakDuringWindow")
		if leakSite == nil {
			t.Fatalf("sample does not show the leak: %+v", s.ByFunction)
		}
		if leakSite.Retained.Count < 2000 || leakSite.Retained.Size < 2000*1024 {
			t.Errorf("leak retained %+v, want at least 2000 objects of 1 KiB", leakSite.Retained)
		}
		if s.TotalRetained.Size < leakSite.Retained.Size || s.TotalAllocated.Size < s.TotalRetained.Size {
			t.Errorf("totals inconsistent: allocated %+v retained %+v", s.TotalAllocated, s.TotalRetained)
		}
		churn := find("worker_test.steadyChurnAllocator")
		if churn == nil || churn.Allocated.Count < 100 {
			t.Fatalf("steady allocations not seen as allocated: %+v", churn)
		}
		if churn.Retained.Count > 8 {
			t.Errorf("steady garbage reported as retained: %+v", churn)
		}
		t.Logf("memory sample: allocated %+v retained %+v; top sites %+v", s.TotalAllocated, s.TotalRetained, s.ByFunction[:min(3, len(s.ByFunction))])
		if s.ByFunction[0].Name != leakSite.Name {
			t.Errorf("top retained site is %s, want the leak", s.ByFunction[0].Name)
		}
		pkg := false
		for _, e := range s.ByPackage {
			pkg = pkg || e.Name == "github.com/vigild/vigil/worker_test"
		}
		loc := false
		for _, e := range s.ByLocation {
			loc = loc || strings.Contains(e.Name, "main_test.go:")
		}
		if !pkg || !loc {
			t.Errorf("by package/location lack the test's sites: %+v %+v", s.ByPackage, s.ByLocation)
		}
	})

	t.Run("cpu_profile", func(t *testing.T) {
		reply, _ := duringWindow(t, c, id,
			map[string]any{"do": "cpu_profile", "duration": 1.5},
			map[string]any{"do": "burn", "duration": 1.2})
		p, err := profile.ParseData(decodeBinary(t, reply))
		if err != nil {
			t.Fatalf("cpu profile: %v", err)
		}
		n := 0
		for _, s := range p.Sample {
			if hasFrame(p, "worker_test.busySpinCPUBurner", s) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("cpu profile has no sample in busySpinCPUBurner (%d samples)", len(p.Sample))
		}
	})

	t.Run("trace", func(t *testing.T) {
		reply := forward(t, c, id, map[string]any{"do": "trace", "duration": 0.3}, nil)
		b := decodeBinary(t, reply)
		if !bytes.HasPrefix(b, []byte("go 1.")) || len(b) < 1000 {
			t.Errorf("not an execution trace: %q (%d bytes)", b[:min(len(b), 16)], len(b))
		}
	})

	t.Run("scheduler_dump", func(t *testing.T) {
		reply := forward(t, c, id, map[string]any{"do": "scheduler_dump"}, nil)
		var d struct {
			Goroutines int            `json:"goroutines"`
			GOMAXPROCS int            `json:"gomaxprocs"`
			Metrics    map[string]any `json:"metrics"`
		}
		if err := reply.DecodeField("data", &d); err != nil {
			t.Fatal(err)
		}
		if d.Goroutines < 3 || d.GOMAXPROCS < 1 || d.Metrics["/sched/goroutines:goroutines"] == nil {
			t.Errorf("scheduler dump = %+v", d)
		}
		if _, ok := d.Metrics["/sched/latencies:seconds"].(map[string]any); !ok {
			t.Errorf("no scheduler latency histogram: %v", d.Metrics["/sched/latencies:seconds"])
		}
	})

	t.Run("runtime_metrics", func(t *testing.T) {
		reply := forward(t, c, id, map[string]any{"do": "runtime_metrics"}, nil)
		var d struct {
			Metrics map[string]any `json:"metrics"`
		}
		if err := reply.DecodeField("data", &d); err != nil {
			t.Fatal(err)
		}
		if goal, _ := d.Metrics["/gc/heap/goal:bytes"].(float64); goal <= 0 || len(d.Metrics) < 50 {
			t.Errorf("runtime metrics: %d values, heap goal %v", len(d.Metrics), d.Metrics["/gc/heap/goal:bytes"])
		}
	})

	t.Run("garbage_profile", func(t *testing.T) {
		reply := forward(t, c, id, map[string]any{"do": "garbage_profile_start"}, nil)
		if !reply.GetBool("started") {
			t.Fatalf("start reply = %s", reply)
		}
		forward(t, c, id, map[string]any{"do": "gc"}, nil)
		reply = forward(t, c, id, map[string]any{"do": "garbage_profile_stop"}, nil)
		var g worker.GarbageProfile
		if err := reply.DecodeField("data", &g); err != nil {
			t.Fatal(err)
		}
		if g.Collections < 2 || g.ForcedCollections < 2 || g.Pauses.Count < 2 || g.PauseTotal <= 0 || g.HeapGoal.End == 0 || g.AllocatedBytes == 0 {
			t.Errorf("garbage profile = %+v", g)
		}
	})

	t.Run("bad parameters through forward", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Forward(ctx, id, map[string]any{"do": "memory_sample"}, nil)
		var re *rpc.RemoteError
		if !errors.As(err, &re) || re.Class != "ArgumentError" || !strings.Contains(re.Message, "Positive duration is required!") {
			t.Errorf("memory_sample without duration: %v", err)
		}
	})

	// readiness came through the pipe
	if msgs := h.notes.Messages(); len(msgs) == 0 || !msgs[0].IsReady() {
		t.Errorf("readiness messages = %+v", msgs)
	}
}

func TestEndToEndSupervisorRestart(t *testing.T) {
	socket := filepath.Join(socketDir(t), "supervisor.ipc")
	stop := runSupervisor(t, socket)
	c := dialSupervisor(t, socket)
	workers := []*helperProcess{startHelper(t, socket, 0), startHelper(t, socket, 1)}
	var ids []string
	for _, h := range workers {
		ids = append(ids, waitRegistered(t, c, h.pid()))
	}

	for round := range 2 {
		c.Close()
		stop() // the supervisor goes away: every connection closes
		if round == 1 {
			// stay away long enough for the workers' pauses to grow
			time.Sleep(3 * time.Second)
		}
		began := time.Now()
		stop = runSupervisor(t, socket)
		c = dialSupervisor(t, socket)
		for i, h := range workers {
			ids[i] = waitRegistered(t, c, h.pid(), ids[i])
			reply := forward(t, c, ids[i], map[string]any{"do": "ping"}, nil)
			if !reply.GetBool("pong") {
				t.Errorf("round %d: worker %d ping = %s", round, i, reply)
			}
		}
		t.Logf("round %d: both workers registered again %v after the restart", round, time.Since(began))
		if time.Since(began) > 10*time.Second {
			t.Errorf("round %d: re-registration took %v, want a few seconds", round, time.Since(began))
		}
	}
	for i, h := range workers {
		if h.cmd.ProcessState != nil {
			t.Errorf("worker %d exited: %v", i, h.cmd.ProcessState)
		}
	}
}
