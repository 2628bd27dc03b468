//go:build linux

package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/internal/testutil"
)

func envMap(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// listenNotify opens a unixgram socket standing in for systemd's.
func listenNotify(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func recvDatagram(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 8192)
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestSystemdSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn := listenNotify(t, path)
	c, err := New(envMap(map[string]string{EnvSocket: path, EnvLog: filepath.Join(t.TempDir(), "x")}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*SystemdClient); !ok {
		t.Fatalf("got %T, want *SystemdClient", c)
	}
	steps := []struct {
		send func() error
		want string // a prefix; RELOADING carries a clock reading
	}{
		{func() error { return Status(c, "Preparing...") }, "STATUS=Preparing...\n"},
		{func() error { return Ready(c, "Running with 3 children.") }, "READY=1\nSTATUS=Running with 3 children.\n"},
		{func() error { return Reloading(c, "") }, "RELOADING=1\nMONOTONIC_USEC="},
		{func() error { return Stopping(c, "") }, "STOPPING=1\n"},
		{func() error { return c.Send(Message{Watchdog: true}) }, "WATCHDOG=1\n"},
		{func() error { return Error(c, "failed", 5) }, "STATUS=failed\nERRNO=5\n"},
	}
	for _, s := range steps {
		if err := s.send(); err != nil {
			t.Fatal(err)
		}
		if got := recvDatagram(t, conn); !strings.HasPrefix(got, s.want) {
			t.Fatalf("got %q, want prefix %q", got, s.want)
		}
	}
	// MONOTONIC_USEC is a CLOCK_MONOTONIC reading in µs.
	if err := Reloading(c, ""); err != nil {
		t.Fatal(err)
	}
	got := recvDatagram(t, conn)
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	line := strings.Split(got, "\n")[1]
	usec, err := strconv.ParseUint(strings.TrimPrefix(line, "MONOTONIC_USEC="), 10, 64)
	if err != nil {
		t.Fatalf("%q: %v", got, err)
	}
	now := uint64(ts.Nano() / 1000)
	if usec > now || now-usec > uint64(10*time.Second/time.Microsecond) {
		t.Fatalf("MONOTONIC_USEC=%d, clock now %d", usec, now)
	}

	// Oversize is refused and nothing is sent.
	err = c.Send(Message{Status: strings.Repeat("x", MaxDatagram)})
	if !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("want ErrMessageTooLarge, got %v", err)
	}
	// Exactly MaxDatagram bytes pass.
	exact := strings.Repeat("y", MaxDatagram-len("STATUS=\n"))
	if err := Status(c, exact); err != nil {
		t.Fatalf("a datagram of exactly %d bytes: %v", MaxDatagram, err)
	}
	if got := recvDatagram(t, conn); got != "STATUS="+exact+"\n" {
		t.Fatalf("after the refused message got %d bytes, want the exact one", len(got))
	}
	// Messages with nothing for systemd are not sent; a closed client refuses.
	if err := Healthy(c); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := Ready(c, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
}

func TestSystemdAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@vigil-notify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	conn := listenNotify(t, name)
	c, err := New(envMap(map[string]string{EnvSocket: name}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := Ready(c, ""); err != nil {
		t.Fatal(err)
	}
	if got := recvDatagram(t, conn); got != "READY=1\n" {
		t.Fatalf("got %q", got)
	}
}

func TestSystemdNoListener(t *testing.T) {
	c, err := NewSystemdClient(filepath.Join(t.TempDir(), "absent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Ready(c, ""); err == nil || !strings.Contains(err.Error(), "systemd socket") {
		t.Fatalf("want a send error, got %v", err)
	}
}

func TestWatchdog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn := listenNotify(t, path)
	env := envMap(map[string]string{EnvSocket: path, EnvWatchdogUsec: "20000", EnvWatchdogPID: strconv.Itoa(os.Getpid())})
	c, err := New(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watchdog(ctx, c, env, nil) }()
	for i := 0; i < 3; i++ {
		if got := recvDatagram(t, conn); got != "WATCHDOG=1\n" {
			t.Fatalf("datagram %d: got %q", i, got)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watchdog did not return after cancel")
	}
}

func TestWatchdogUnhealthy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn := listenNotify(t, path)
	env := envMap(map[string]string{EnvSocket: path, EnvWatchdogUsec: "10000"})
	c, err := New(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	healthy, calls := false, 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Watchdog(ctx, c, env, func() bool {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 5 {
				healthy = true // unhealthy for four checks, then well
			}
			return healthy
		})
	}()
	// The first datagram arrives only once healthy, after four skipped checks.
	if got := recvDatagram(t, conn); got != "WATCHDOG=1\n" {
		t.Fatalf("got %q", got)
	}
	mu.Lock()
	if calls < 5 {
		t.Errorf("a keep-alive was sent after %d health checks, want it after the 5th", calls)
	}
	mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWatchdogDisabledOrBad(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"unset", map[string]string{}, ""},
		{"other pid", map[string]string{EnvWatchdogUsec: "1000", EnvWatchdogPID: "1"}, ""},
		{"bad usec", map[string]string{EnvWatchdogUsec: "soon"}, EnvWatchdogUsec},
		{"zero usec", map[string]string{EnvWatchdogUsec: "0"}, EnvWatchdogUsec},
		{"bad pid", map[string]string{EnvWatchdogUsec: "1000", EnvWatchdogPID: "x"}, EnvWatchdogPID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sb strings.Builder
			c := NewWriterClient(&sb)
			// A context that never ends: Watchdog must return at once.
			err := Watchdog(context.Background(), c, envMap(tt.env), nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if !errors.Is(err, ErrBadEnvironment) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want ErrBadEnvironment naming %s", err, tt.wantErr)
			}
			if sb.Len() != 0 {
				t.Fatalf("sent %q", sb.String())
			}
		})
	}
}

func TestWatchdogSendError(t *testing.T) {
	c, err := NewSystemdClient(filepath.Join(t.TempDir(), "absent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	err = Watchdog(context.Background(), c, envMap(map[string]string{EnvWatchdogUsec: "1000"}), nil)
	if err == nil || !strings.Contains(err.Error(), "watchdog") {
		t.Fatalf("want the send error, got %v", err)
	}
}

func TestFileClient(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.log")
	c, err := New(envMap(map[string]string{EnvLog: path}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*FileClient); !ok {
		t.Fatalf("got %T, want *FileClient", c)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Fatalf("New should create an empty file: %v", err)
	}
	for _, send := range []func() error{
		func() error { return Status(c, "Preparing...") },
		func() error { return c.Send(Message{Watchdog: true}) }, // ignored
		func() error { return Ready(c, "") },
	} {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	// The file may be removed underneath: the next message recreates it.
	got, _ := os.ReadFile(path)
	if string(got) != "{\"status\":\"Preparing...\"}\n{\"ready\":true}\n" {
		t.Fatalf("got %q", got)
	}
	os.Remove(path)
	if err := Stopping(c, ""); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	if string(got) != "{\"stopping\":true}\n" {
		t.Fatalf("after removal got %q", got)
	}
	c.Close()
	if err := Ready(c, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
}

func TestLogClient(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	c, err := New(envMap(nil), logger)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*LogClient); !ok {
		t.Fatalf("got %T, want *LogClient", c)
	}
	if err := c.Send(Message{Ready: Bool(true), Status: "up", Extra: map[string]json.RawMessage{"n": json.RawMessage("3")}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(Message{Watchdog: true}); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("want one JSON record, got %q: %v", buf.String(), err)
	}
	if rec["msg"] != "notify" || rec["level"] != "INFO" || rec["ready"] != true || rec["status"] != "up" || rec["n"] != "3" {
		t.Fatalf("got %v", rec)
	}
	// nil logger: no panic, nothing to see.
	if err := Ready(NewLogClient(nil), ""); err != nil {
		t.Fatal(err)
	}
}

func TestNewOrNop(t *testing.T) {
	c, err := NewOrNop(envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(Nop); !ok {
		t.Fatalf("got %T, want Nop", c)
	}
	if err := Ready(c, ""); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "n.log")
	c, err = NewOrNop(envMap(map[string]string{EnvLog: path}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*FileClient); !ok {
		t.Fatalf("got %T, want *FileClient", c)
	}
}

// dupPipe returns a descriptor number for NOTIFY_PIPE that the client may
// own, and the read end of its pipe.
func dupPipe(t *testing.T) (int, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { r.Close() })
	return fd, r
}

func TestNewPrecedence(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	listenNotify(t, sock)
	logPath := filepath.Join(t.TempDir(), "notify.log")
	tests := []struct {
		name   string
		pipe   bool
		socket bool
		log    bool
		want   string
	}{
		{"all", true, true, true, "*notify.WriterClient"},
		{"socket and log", false, true, true, "*notify.SystemdClient"},
		{"pipe and log", true, false, true, "*notify.WriterClient"},
		{"log", false, false, true, "*notify.FileClient"},
		{"none", false, false, false, "*notify.LogClient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			if tt.pipe {
				fd, _ := dupPipe(t)
				env[EnvPipe] = strconv.Itoa(fd)
			}
			if tt.socket {
				env[EnvSocket] = sock
			}
			if tt.log {
				env[EnvLog] = logPath
			}
			c, err := New(envMap(env), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := fmt.Sprintf("%T", c); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNewBadEnvironment(t *testing.T) {
	closedFD, _ := dupPipe(t)
	unix.Close(closedFD)
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"pipe not a number", map[string]string{EnvPipe: "three", EnvLog: "/tmp/x"}, `NOTIFY_PIPE="three"`},
		{"pipe negative", map[string]string{EnvPipe: "-1"}, `NOTIFY_PIPE="-1"`},
		{"pipe closed fd", map[string]string{EnvPipe: strconv.Itoa(closedFD)}, "NOTIFY_PIPE=" + strconv.Itoa(closedFD)},
		{"socket relative", map[string]string{EnvSocket: "run/notify"}, `NOTIFY_SOCKET="run/notify"`},
		{"socket vsock", map[string]string{EnvSocket: "vsock:2:1"}, `NOTIFY_SOCKET="vsock:2:1"`},
		{"socket bare @", map[string]string{EnvSocket: "@"}, `NOTIFY_SOCKET="@"`},
		{"socket too long", map[string]string{EnvSocket: "/" + strings.Repeat("a", 200)}, "NOTIFY_SOCKET"},
		{"log unwritable", map[string]string{EnvLog: "/nonexistent-dir/notify.log"}, "NOTIFY_LOG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(envMap(tt.env), nil)
			if err == nil {
				c.Close()
				t.Fatal("want an error")
			}
			if !errors.Is(err, ErrBadEnvironment) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrBadEnvironment naming %s", err, tt.want)
			}
			if c != nil {
				t.Fatalf("New returned a non-nil Client (%T) with its error", c)
			}
			if c, _ := NewOrNop(envMap(tt.env)); c != nil {
				t.Fatalf("NewOrNop returned a non-nil Client (%T) with its error", c)
			}
		})
	}
}

func TestPipeClientOwnsFD(t *testing.T) {
	fd, r := dupPipe(t)
	c, err := New(envMap(map[string]string{EnvPipe: strconv.Itoa(fd)}), nil)
	if err != nil {
		t.Fatal(err)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("the pipe should be close-on-exec: flags %d, %v", flags, err)
	}
	if err := Ready(c, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing the client closed the only write end: the reader ends.
	rd := NewReader(r, nil)
	m, err := rd.Next()
	if err != nil || !m.IsReady() {
		t.Fatalf("got %+v, %v", m, err)
	}
	if _, err := rd.Next(); err != io.EOF {
		t.Fatalf("want io.EOF, got %v", err)
	}
}

func init() { helpers["pipe-child"] = helperPipeChild }

// helperPipeChild is a child speaking through NOTIFY_PIPE, with garbage
// written straight to the descriptor between its messages.
func helperPipeChild() int {
	c, err := New(os.Getenv, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fd, _ := strconv.Atoi(os.Getenv(EnvPipe))
	garbage := func(s string) {
		if _, err := unix.Write(fd, []byte(s)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	must := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	must(Status(c, "Preparing..."))
	garbage("this is not json\n")
	garbage("[1,2,3]\n\n   \n")
	garbage(`{"ready":"very"}` + "\n")
	garbage(strings.Repeat("x", MaxLine+10) + "\n")
	must(c.Send(Message{Ready: Bool(true), Status: "Running", Extra: map[string]json.RawMessage{
		"cloexec": json.RawMessage(strconv.FormatBool(flags&unix.FD_CLOEXEC != 0))}}))
	garbage("{\"truncated\":\n")
	must(Healthy(c))
	must(c.Close())
	return 0
}

func TestPipeChildProcess(t *testing.T) {
	parentEnd, childEnd, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer parentEnd.Close()
	flags, err := unix.FcntlInt(parentEnd.Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("parent end should be close-on-exec: %d, %v", flags, err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=pipe-child", EnvPipe+"=3", EnvSocket+"=/should/not/be/used")
	cmd.ExtraFiles = []*os.File{childEnd}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	childEnd.Close()

	var logBuf syncBuffer
	rd := NewReader(parentEnd, slog.New(slog.NewTextHandler(&logBuf, nil)))
	var got []Message
	for {
		m, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	want := []Message{
		{Status: "Preparing..."},
		{Ready: Bool(true), Status: "Running", Extra: map[string]json.RawMessage{"cloexec": json.RawMessage("true")}},
		{Healthy: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if rd.Skipped() != 5 {
		t.Fatalf("skipped %d lines, want 5; log:\n%s", rd.Skipped(), logBuf.String())
	}
	logs := logBuf.String()
	for _, w := range []string{"this is not json", "line too long", "not a JSON object", `\"ready\"`} {
		if !strings.Contains(logs, w) {
			t.Errorf("log lacks %q:\n%s", w, logs)
		}
	}
}

// syncBuffer is a buffer safe for concurrent writers and readers.
type syncBuffer = testutil.Buffer

func TestReaderClosedWhileBlocked(t *testing.T) {
	parentEnd, childEnd, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer childEnd.Close()
	rd := NewReader(parentEnd, nil)
	done := make(chan error, 1)
	go func() {
		_, err := rd.Next()
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let Next block; the result is the same if it has not yet
	parentEnd.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("want os.ErrClosed, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next stayed blocked after Close")
	}
}
