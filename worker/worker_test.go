package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigild/vigil/notify"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/worker"
	"github.com/vigild/vigil/worker/workertest"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestStartErrors(t *testing.T) {
	_, err := worker.Start(context.Background(), worker.Options{Getenv: env(nil)})
	if !errors.Is(err, worker.ErrNoSupervisor) {
		t.Errorf("no socket: %v, want ErrNoSupervisor", err)
	}
	for _, v := range []string{"abc", "-1", "1.5"} {
		_, err := worker.Start(context.Background(), worker.Options{Getenv: env(map[string]string{
			worker.EnvSupervisorSocket: "/nonexistent/s", worker.EnvInstance: v})})
		if !errors.Is(err, worker.ErrBadEnvironment) || !strings.Contains(err.Error(), "VIGIL_INSTANCE") || !strings.Contains(err.Error(), v) {
			t.Errorf("VIGIL_INSTANCE=%s: %v", v, err)
		}
	}
}

func TestRegistersStateFromEnvironment(t *testing.T) {
	sup := workertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := worker.Start(ctx, worker.Options{
		Getenv: env(map[string]string{worker.EnvSupervisorSocket: sup.Path, worker.EnvService: "web", worker.EnvInstance: "2"}),
		State:  map[string]any{"port": 8080},
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	reg, err := sup.WaitRegistration(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if reg.ProcessID() != os.Getpid() || reg.State["name"] != "web" || reg.State["instance"] != float64(2) || reg.State["port"] != float64(8080) {
		t.Errorf("state = %v", reg.State)
	}
	// It says how its diagnostics can answer: vigil dump reads it.
	if fmt.Sprint(reg.State["outputs"]) != "[inline path log]" {
		t.Errorf("state outputs = %v, want [inline path log]", reg.State["outputs"])
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.ConnectionID() != reg.ConnectionID && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if w.ConnectionID() != reg.ConnectionID {
		t.Errorf("ConnectionID() = %q, want %q", w.ConnectionID(), reg.ConnectionID)
	}
}

func TestCustomOperationOverridesAndStop(t *testing.T) {
	var calls atomic.Int32
	sup, id := inProcess(t, worker.Options{Handlers: rpc.Handlers{
		"ping": func(ctx context.Context, call *rpc.Call) error {
			calls.Add(1)
			return call.Finish(map[string]any{"pong": true})
		},
		"thread_dump": func(ctx context.Context, call *rpc.Call) error {
			return call.Finish(map[string]any{"data": "mine"})
		},
	}})
	reply, err := call(sup, id, map[string]any{"do": "ping"})
	if err != nil || !reply.GetBool("pong") || calls.Load() != 1 {
		t.Errorf("ping: %v %s", err, reply)
	}
	reply, err = call(sup, id, map[string]any{"do": "thread_dump"})
	if d, _ := reply.GetString("data"); err != nil || d != "mine" {
		t.Errorf("overridden thread_dump: %v %s", err, reply)
	}
}

// TestReconnect: the fake supervisor goes away and comes back at the same
// path; the worker registers again, OnRegister sees both registrations, and
// Stop returns promptly while it waits to retry.
func TestReconnect(t *testing.T) {
	dir := socketDir(t)
	path := filepath.Join(dir, "s")
	sup, err := workertest.Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	registered := make(chan string, 10)
	w, err := worker.Start(context.Background(), worker.Options{
		Socket: path, Logger: testLogger(t),
		MinPause: 10 * time.Millisecond, MaxPause: 200 * time.Millisecond,
		OnRegister: func(id string) { registered <- id },
	})
	if err != nil {
		t.Fatal(err)
	}
	wait := func() string {
		select {
		case id := <-registered:
			return id
		case <-time.After(10 * time.Second):
			t.Fatal("no registration within 10s")
			return ""
		}
	}
	first := wait()
	sup.Close()
	os.Remove(path)
	deadline := time.Now().Add(10 * time.Second)
	for w.ConnectionID() != "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if w.ConnectionID() != "" {
		t.Errorf("ConnectionID() = %q while disconnected", w.ConnectionID())
	}
	time.Sleep(300 * time.Millisecond) // a few failed attempts
	sup, err = workertest.Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	second := wait()
	if second == first || !sup.Connected(second) {
		t.Errorf("second registration %q (first %q)", second, first)
	}
	sup.Close()
	stopped := make(chan struct{})
	go func() { w.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return while reconnecting")
	}
	w.Stop() // twice is fine
}

// TestSupervisorThatNeverAnswers: a socket that accepts but never replies to
// register must not block the program: Start returns at once, and Stop ends
// the pending registration.
func TestSupervisorThatNeverAnswers(t *testing.T) {
	path := filepath.Join(socketDir(t), "s")
	ln, err := netListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err == nil {
			close(accepted)
			defer c.Close()
			buf := make([]byte, 1024)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}
	}()
	began := time.Now()
	w, err := worker.Start(context.Background(), worker.Options{Socket: path, RegisterTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(began) > time.Second {
		t.Errorf("Start blocked for %v", time.Since(began))
	}
	<-accepted
	done := make(chan struct{})
	go func() { w.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop blocked on a silent supervisor")
	}
}

func TestNotifierOutsideVigilIsSilent(t *testing.T) {
	n, err := worker.NewNotifier(env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []func() error{n.Ready, n.Healthy, n.Stopping, func() error { return n.Status("x") }, n.Close} {
		if err := f(); err != nil {
			t.Errorf("no-op notifier: %v", err)
		}
	}
	var nilN *worker.Notifier
	if err := nilN.Ready(); err != nil {
		t.Errorf("nil notifier: %v", err)
	}
}

func TestNotifierBadEnvironment(t *testing.T) {
	n, err := worker.NewNotifier(env(map[string]string{notify.EnvPipe: "abc"}), nil)
	if !errors.Is(err, notify.ErrBadEnvironment) || !strings.Contains(err.Error(), "NOTIFY_PIPE") {
		t.Errorf("err = %v", err)
	}
	if n == nil || n.Ready() != nil {
		t.Error("no usable notifier returned with the error")
	}
}

func TestNotifierMessages(t *testing.T) {
	notes := workertest.NewNotifyLog(t)
	n, err := worker.NewNotifier(notes.Getenv, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, f := range []func() error{func() error { return n.Status("warming up") }, n.Ready, n.Healthy, n.Stopping} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := notes.Wait(ctx, func(m notify.Message) bool { return m.Stopping }); err != nil {
		t.Fatal(err)
	}
	msgs := notes.Messages()
	if len(msgs) != 4 || msgs[0].Status != "warming up" || !msgs[1].IsReady() || !msgs[2].Healthy || !msgs[3].Stopping {
		t.Errorf("messages = %+v", msgs)
	}
}

// recorder is a notify.Client that counts Healthy messages.
type recorder struct{ healthy atomic.Int32 }

func (r *recorder) Send(m notify.Message) error {
	if m.Healthy {
		r.healthy.Add(1)
	}
	return nil
}
func (r *recorder) Close() error { return nil }

func TestBeatOnlyWhileCheckPasses(t *testing.T) {
	rec := &recorder{}
	n := worker.NewNotifierClient(rec, testLogger(t))
	var failing atomic.Bool
	failing.Store(true)
	checks := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- n.Beat(ctx, time.Millisecond, func(context.Context) error {
			select {
			case checks <- struct{}{}:
			default:
			}
			if failing.Load() {
				return errors.New("self-check failed")
			}
			return nil
		})
	}()
	for range 5 {
		<-checks
	}
	if got := rec.healthy.Load(); got != 0 {
		t.Errorf("%d heartbeats while the check failed", got)
	}
	failing.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for rec.healthy.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if rec.healthy.Load() < 3 {
		t.Errorf("only %d heartbeats once the check passed", rec.healthy.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Beat: %v", err)
	}
	if err := n.Beat(context.Background(), 0, func(context.Context) error { return nil }); err == nil {
		t.Error("Beat with zero interval succeeded")
	}
}

func netListenUnix(path string) (net.Listener, error) { return net.Listen("unix", path) }
