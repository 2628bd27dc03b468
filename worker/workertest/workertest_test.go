package workertest_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigild/vigil/notify"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/worker/workertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rawWorker registers over a plain rpc connection and serves "echo".
func rawWorker(t *testing.T, path string, state map[string]any) *rpc.Conn {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	conn := rpc.NewConn(nc, rpc.Options{Handlers: rpc.Handlers{
		"echo": func(ctx context.Context, call *rpc.Call) error {
			if err := call.Reply(map[string]any{"progress": 1}); err != nil {
				return err
			}
			return call.Finish(call.Message())
		},
	}})
	done := make(chan struct{})
	go func() { conn.Run(context.Background()); close(done) }()
	t.Cleanup(func() { conn.Close(); <-done })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Call(ctx, "register", map[string]any{"state": state}, nil); err != nil {
		t.Fatal(err)
	}
	return conn
}

func TestSupervisor(t *testing.T) {
	sup := workertest.New(t)
	if sup.Env() != "VIGIL_SUPERVISOR_SOCKET="+sup.Path {
		t.Errorf("Env() = %q", sup.Env())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := rawWorker(t, sup.Path, map[string]any{"process_id": 42, "name": "a"})
	rawWorker(t, sup.Path, map[string]any{"process_id": 43, "name": "b"})
	reg, err := sup.WaitRegistration(ctx, func(r workertest.Registration) bool { return r.State["name"] == "b" })
	if err != nil {
		t.Fatal(err)
	}
	if reg.ProcessID() != 43 || len(sup.Registrations()) != 2 {
		t.Errorf("registration %+v of %d", reg, len(sup.Registrations()))
	}
	var progress int
	reply, err := sup.Call(ctx, sup.Registrations()[0].ConnectionID, "echo", map[string]any{"x": "y"}, func(m *rpc.Message) error {
		progress++
		return nil
	})
	if err != nil || progress != 1 {
		t.Fatalf("echo: %v, %d intermediate replies", err, progress)
	}
	if x, _ := reply.GetString("x"); x != "y" {
		t.Errorf("echo reply = %s", reply)
	}
	if _, err := sup.Call(ctx, "nope", "echo", nil, nil); !errors.Is(err, workertest.ErrNotConnected) {
		t.Errorf("unknown id: %v", err)
	}
	id := sup.Registrations()[0].ConnectionID
	conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for sup.Connected(id) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if sup.Connected(id) {
		t.Error("closed connection still listed")
	}
	sup.Close()
	if _, err := sup.WaitRegistration(ctx, func(workertest.Registration) bool { return false }); !errors.Is(err, workertest.ErrClosed) {
		t.Errorf("wait on closed supervisor: %v", err)
	}
}

// TestNotifyPipe: a real child process writes to fd 3 as vigil's children do.
func TestNotifyPipe(t *testing.T) {
	notes := workertest.NewNotifyPipe(t)
	cmd := exec.Command("/bin/sh", "-c", `echo '{"status":"starting"}' >&3; echo 'garbage' >&3; echo '{"ready":true}' >&3; echo '{"healthy":true}' >&3`)
	cmd.Env = append(os.Environ(), notes.Env())
	cmd.ExtraFiles = []*os.File{notes.ChildFile()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	notes.CloseChildFile()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := notes.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := notes.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := notes.Wait(ctx, func(m notify.Message) bool { return m.Stopping }); !errors.Is(err, workertest.ErrEnded) {
		t.Errorf("wait after the child exited: %v, want ErrEnded", err)
	}
	if msgs := notes.Messages(); len(msgs) != 3 || msgs[0].Status != "starting" {
		t.Errorf("messages = %+v", msgs)
	}
}

func TestNotifyLog(t *testing.T) {
	notes := workertest.NewNotifyLog(t)
	c, err := notify.New(notes.Getenv, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		time.Sleep(20 * time.Millisecond)
		notify.Ready(c, "up")
	}()
	if err := notes.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := notes.WaitHealthy(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitHealthy with none sent: %v", err)
	}
}
