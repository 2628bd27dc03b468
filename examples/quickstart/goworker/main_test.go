package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigild/vigil/internal/testutil"
	"github.com/vigild/vigil/notify"
	"github.com/vigild/vigil/worker/workertest"
)

func TestMain(m *testing.M) {
	if os.Getenv("GOWORKER_RUN_MAIN") == "1" {
		main()
	}
	goleak.VerifyTestMain(m)
}

// syncBuffer is a buffer safe for concurrent writers and readers.
type syncBuffer = testutil.Buffer

// start runs the example as a child process (the test binary re-executed).
func start(t *testing.T, env ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"GOWORKER_RUN_MAIN=1", "PORT=0"}, env...)...)
	out := &syncBuffer{}
	cmd.Stderr = out
	return cmd, out
}

func TestUnderVigil(t *testing.T) {
	sup := workertest.New(t)
	notes := workertest.NewNotifyPipe(t)
	cmd, out := start(t, sup.Env(), notes.Env(), "VIGIL_SERVICE=web", "VIGIL_INSTANCE=0")
	cmd.ExtraFiles = []*os.File{notes.ChildFile()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	notes.CloseChildFile()
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := notes.WaitReady(ctx); err != nil {
		t.Fatalf("no ready: %v\n%s", err, out)
	}
	reg, err := sup.WaitRegistration(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := reg.State["port"].(float64)
	if reg.ProcessID() != cmd.Process.Pid || reg.State["name"] != "web" || port <= 0 {
		t.Fatalf("registration = %+v", reg)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", int(port)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "hello from web") {
		t.Errorf("body = %q", body)
	}
	reply, err := sup.Call(ctx, reg.ConnectionID, "stats", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := reply.Get("requests"); string(n) != "1" {
		t.Errorf("stats = %s", reply)
	}
	if reply, err := sup.Call(ctx, reg.ConnectionID, "thread_dump", nil, nil); err != nil || !strings.Contains(reply.String(), "net/http") {
		t.Errorf("thread_dump: %v", err)
	}
	if err := notes.WaitHealthy(ctx); err != nil {
		t.Fatalf("no healthy: %v\n%s", err, out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	exited = true
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	if _, err := notes.Wait(ctx, func(m notify.Message) bool { return m.Stopping }); err != nil {
		t.Errorf("no stopping message: %v", err)
	}
}

func TestByHand(t *testing.T) {
	cmd, out := start(t, "VIGIL_SUPERVISOR_SOCKET=", "NOTIFY_PIPE=", "NOTIFY_SOCKET=", "NOTIFY_LOG=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "listening") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	if s := out.String(); !strings.Contains(s, "not under vigil") || strings.Contains(s, "level=WARN") || strings.Contains(s, "level=ERROR") {
		t.Errorf("output by hand:\n%s", s)
	}
}

func TestBadPort(t *testing.T) {
	cmd, out := start(t, "PORT=http")
	cmd.Env = append(cmd.Env, "PORT=http")
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(out.String(), "PORT") {
		t.Errorf("PORT=http: %v\n%s", err, out)
	}
}
