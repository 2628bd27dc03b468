package worker_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/worker"
	"github.com/vigild/vigil/worker/workertest"
)

// inProcess starts a worker in this process connected to a fake supervisor
// and returns the supervisor and the registration's connection id.
func inProcess(t *testing.T, opts worker.Options) (*workertest.Supervisor, string) {
	t.Helper()
	sup := workertest.New(t)
	opts.Socket = sup.Path
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	w, err := worker.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, err := sup.WaitRegistration(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sup, reg.ConnectionID
}

func call(sup *workertest.Supervisor, id string, params map[string]any) (*rpc.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	op := params["do"].(string)
	p := map[string]any{}
	for k, v := range params {
		if k != "do" {
			p[k] = v
		}
	}
	return sup.Call(ctx, id, op, p, nil)
}

func TestBadParameters(t *testing.T) {
	sup, id := inProcess(t, worker.Options{})
	existing := filepath.Join(t.TempDir(), "exists")
	if err := os.WriteFile(existing, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		params map[string]any
		class  string
		want   []string
	}{
		{map[string]any{"do": "memory_sample"}, "ArgumentError", []string{"Positive duration is required!", "duration: missing"}},
		{map[string]any{"do": "memory_sample", "duration": nil}, "ArgumentError", []string{"Positive duration is required!"}},
		{map[string]any{"do": "memory_sample", "duration": -1}, "ArgumentError", []string{"Positive duration is required!", "got -1"}},
		{map[string]any{"do": "memory_sample", "duration": 0}, "ArgumentError", []string{"Positive duration is required!", "got 0"}},
		{map[string]any{"do": "memory_sample", "duration": 1, "sample_rate": -5}, "ArgumentError", []string{"sample_rate", "-5"}},
		{map[string]any{"do": "memory_sample", "duration": 1, "limit": "x"}, "ArgumentError", []string{"limit"}},
		{map[string]any{"do": "cpu_profile", "duration": "ten"}, "ArgumentError", []string{"cpu_profile", `"ten" is not a number`}},
		{map[string]any{"do": "cpu_profile"}, "ArgumentError", []string{"cpu_profile", "duration: missing"}},
		{map[string]any{"do": "trace", "duration": 1e9}, "ArgumentError", []string{"trace", "longer than the maximum"}},
		{map[string]any{"do": "thread_dump", "format": "xml"}, "ArgumentError", []string{"thread_dump", "unknown format", `"xml"`, `"pprof"`}},
		{map[string]any{"do": "memory_dump", "format": 3}, "ArgumentError", []string{"unknown format 3"}},
		{map[string]any{"do": "runtime_metrics", "path": ""}, "ArgumentError", []string{"path must be a non-empty string"}},
		{map[string]any{"do": "runtime_metrics", "path": 7}, "ArgumentError", []string{"path", "7"}},
		{map[string]any{"do": "scheduler_dump", "log": 5}, "ArgumentError", []string{"log must be", "5"}},
		{map[string]any{"do": "thread_dump", "path": existing}, "IOError", []string{"thread_dump", "file exists", existing}},
		{map[string]any{"do": "thread_dump", "path": filepath.Join(existing, "sub")}, "IOError", []string{"not a directory"}},
		{map[string]any{"do": "thread_dump", "path": "/etc/vigil-must-not-exist"}, "ArgumentError", []string{"outside the dump directory", "/etc/vigil-must-not-exist"}},
		{map[string]any{"do": "thread_dump", "path": "../escape"}, "ArgumentError", []string{"outside the dump directory"}},
		{map[string]any{"do": "garbage_profile_stop"}, "RuntimeError", []string{"not running", "garbage_profile_start first"}},
		{map[string]any{"do": "bogus"}, "NoMethodError", []string{`"bogus"`}},
	} {
		_, err := call(sup, id, tc.params)
		var re *rpc.RemoteError
		if !errors.As(err, &re) {
			t.Errorf("%v: err = %v, want a failed reply", tc.params, err)
			continue
		}
		if re.Class != tc.class {
			t.Errorf("%v: class %q, want %q (%s)", tc.params, re.Class, tc.class, re.Message)
		}
		for _, w := range tc.want {
			if !strings.Contains(re.Message, w) {
				t.Errorf("%v: message %q lacks %q", tc.params, re.Message, w)
			}
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("existing file overwritten: %q", b)
	}
}

func TestPathOutput(t *testing.T) {
	sup, id := inProcess(t, worker.Options{})
	dir := t.TempDir()
	for _, tc := range []struct {
		op, format, prefix string
	}{
		{"thread_dump", "", "goroutine "},
		{"runtime_metrics", "", `{"metrics":`},
		{"memory_dump", "text", "heap profile:"},
	} {
		path := filepath.Join(dir, tc.op)
		params := map[string]any{"do": tc.op, "path": path}
		if tc.format != "" {
			params["format"] = tc.format
		}
		reply, err := call(sup, id, params)
		if err != nil {
			t.Fatalf("%s: %v", tc.op, err)
		}
		if p, _ := reply.GetString("path"); p != path || reply.Has("data") {
			t.Errorf("%s: reply %s", tc.op, reply)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", tc.op, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(path)
		if !bytes.HasPrefix(b, []byte(tc.prefix)) {
			t.Errorf("%s: file starts %.40q, want %q", tc.op, b, tc.prefix)
		}
		// the second time the file exists: refused, left alone
		if _, err := call(sup, id, params); err == nil || !strings.Contains(err.Error(), "file exists") {
			t.Errorf("%s: second write: %v, want file exists", tc.op, err)
		}
		if b2, _ := os.ReadFile(path); !bytes.Equal(b, b2) {
			t.Errorf("%s: file changed by the refused write", tc.op)
		}
	}
	// a failed producer leaves no file behind
	path := filepath.Join(dir, "stop")
	if _, err := call(sup, id, map[string]any{"do": "garbage_profile_stop", "path": path}); err == nil {
		t.Fatal("garbage_profile_stop without start succeeded")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed call left %s: %v", path, err)
	}
}

func TestLogAndInlineOutput(t *testing.T) {
	var buf lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	sup, id := inProcess(t, worker.Options{Logger: logger})
	reply, err := call(sup, id, map[string]any{"do": "thread_dump", "log": "dump requested by test"})
	if err != nil {
		t.Fatal(err)
	}
	if reply.Has("data") || !reply.GetBool("logged") {
		t.Errorf("log reply = %s", reply)
	}
	out := buf.String()
	if !strings.Contains(out, `"msg":"dump requested by test"`) || !strings.Contains(out, `"operation":"thread_dump"`) || !strings.Contains(out, "goroutine ") {
		t.Errorf("log output lacks the dump:\n%.500s", out)
	}
	// path and log null are absent, as the original's tools send them
	reply, err = call(sup, id, map[string]any{"do": "thread_dump", "path": nil, "log": nil})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := reply.GetString("data"); !strings.Contains(d, "goroutine ") {
		t.Errorf("inline dump = %.200s", reply)
	}
	reply, err = call(sup, id, map[string]any{"do": "thread_dump", "format": "pprof"})
	if err != nil {
		t.Fatal(err)
	}
	if enc, _ := reply.GetString("encoding"); enc != "base64" {
		t.Errorf("pprof thread dump reply = %.200s", reply)
	}
}

func TestAlreadyRunning(t *testing.T) {
	sup, id := inProcess(t, worker.Options{})
	for _, op := range []string{"cpu_profile", "trace", "memory_sample"} {
		t.Run(op, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			started := make(chan struct{})
			var first *rpc.Message
			var firstErr error
			var wg sync.WaitGroup
			wg.Go(func() {
				once := sync.OnceFunc(func() { close(started) })
				// memory_sample sends "started" only when asked to stream.
				first, firstErr = sup.Call(ctx, id, op, map[string]any{"duration": 2, "stream": true}, func(m *rpc.Message) error {
					if m.GetBool("started") {
						once()
					}
					return nil
				})
			})
			select {
			case <-started:
			case <-ctx.Done():
				t.Fatal("no started reply")
			}
			_, err := sup.Call(ctx, id, op, map[string]any{"duration": 1}, nil)
			var re *rpc.RemoteError
			if !errors.As(err, &re) || !strings.Contains(re.Message, "already running") || !strings.Contains(re.Message, op) {
				t.Errorf("second %s: %v, want already running", op, err)
			}
			wg.Wait()
			if firstErr != nil || !first.Has("data") {
				t.Errorf("first %s: %v %.100s", op, firstErr, first)
			}
		})
	}
	t.Run("garbage_profile_start", func(t *testing.T) {
		if _, err := call(sup, id, map[string]any{"do": "garbage_profile_start"}); err != nil {
			t.Fatal(err)
		}
		_, err := call(sup, id, map[string]any{"do": "garbage_profile_start"})
		if err == nil || !strings.Contains(err.Error(), "already running") {
			t.Errorf("second start: %v", err)
		}
		if _, err := call(sup, id, map[string]any{"do": "garbage_profile_stop"}); err != nil {
			t.Errorf("stop: %v", err)
		}
		if _, err := call(sup, id, map[string]any{"do": "garbage_profile_stop"}); err == nil || !strings.Contains(err.Error(), "not running") {
			t.Errorf("second stop: %v", err)
		}
	})
}

func TestProfileInterruptedWhenWorkerStops(t *testing.T) {
	sup := workertest.New(t)
	w, err := worker.Start(context.Background(), worker.Options{Socket: sup.Path, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg, err := sup.WaitRegistration(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := sup.Call(ctx, reg.ConnectionID, "cpu_profile", map[string]any{"duration": 600}, func(m *rpc.Message) error {
			if m.GetBool("started") {
				go w.Stop()
			}
			return nil
		})
		errc <- err
	}()
	if err := <-errc; !errors.Is(err, rpc.ErrClosed) {
		t.Errorf("call during Stop: %v, want the connection closed", err)
	}
	w.Wait()
	// the profiler was released: a new one can start in this process
	sup2, id := inProcess(t, worker.Options{})
	if _, err := call(sup2, id, map[string]any{"do": "cpu_profile", "duration": 0.05}); err != nil {
		t.Errorf("cpu_profile after an interrupted one: %v", err)
	}
}

//go:noinline
func deepPark(depth int, stop <-chan struct{}) {
	if depth > 0 {
		deepPark(depth-1, stop)
		return
	}
	<-stop
}

// TestTooLargeInline: a dump over the protocol's line limit fails clearly
// instead of breaking the connection, and "path" still gets it.
func TestTooLargeInline(t *testing.T) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 1500 {
		wg.Go(func() { deepPark(200, stop) })
	}
	defer func() { close(stop); wg.Wait() }()
	sup, id := inProcess(t, worker.Options{})
	_, err := call(sup, id, map[string]any{"do": "thread_dump"})
	var re *rpc.RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "too large to send inline") || !strings.Contains(re.Message, `"path"`) {
		t.Fatalf("huge inline dump: %v", err)
	}
	path := filepath.Join(t.TempDir(), "dump")
	if _, err := call(sup, id, map[string]any{"do": "thread_dump", "path": path}); err != nil {
		t.Fatalf("huge dump to path: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() <= worker.MaxInline {
		t.Errorf("dump file: %v, %v", fi, err)
	}
	if _, err := call(sup, id, map[string]any{"do": "scheduler_dump"}); err != nil {
		t.Errorf("connection unusable after the refusal: %v", err)
	}
}
