package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// serveListener serves a Server on l until the test ends, or until the
// function it returns is called.
func serveListener(t *testing.T, l net.Listener) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{}).Serve(ctx, l) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// answers reports whether a status call on path gets its answer.
func answers(path string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.Status(ctx)
	return err == nil
}

// Defect 5: after the socket file was deleted, the supervisor ran on,
// unreachable, until it restarted.
func TestSocketHeals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "heal.ipc")
	logs := &syncBuffer{}
	l, err := Listen(path, ListenOptions{HealInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stop := serveListener(t, l)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted socket to answer again", func() bool { return answers(path) })
	waitFor(t, "the healing to be logged", func() bool { return strings.Contains(logs.String(), "bound it again") })
	if n := strings.Count(logs.String(), "socket file was gone: bound it again"); n != 1 {
		t.Errorf("the healing logged %d times, want once:\n%s", n, logs)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the socket bound again: %v %v, want mode 0600", fi.Mode(), err)
	}

	// Replaced by a dead socket: bound again too.
	os.Remove(path)
	if _, err := listenStale(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replaced socket to answer again", func() bool { return answers(path) })
	waitFor(t, "the replacement to be logged", func() bool {
		return strings.Contains(logs.String(), "socket file was replaced: bound it again")
	})

	// Replaced by a file that is not a socket: left alone, said once.
	os.Remove(path)
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the problem to be logged", func() bool { return strings.Contains(logs.String(), "is not a socket") })
	time.Sleep(300 * time.Millisecond)
	if n := strings.Count(logs.String(), "is not a socket"); n != 1 {
		t.Errorf("the problem logged %d times, want once:\n%s", n, logs)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Errorf("a file that is not a socket was replaced")
	}
	os.Remove(path)
	waitFor(t, "the socket to answer once the file is gone", func() bool { return answers(path) })
	stop() // closes l
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the socket it bound itself is left after Close: %v", err)
	}
}

// An inherited listening socket: served with the same guards, healed
// likewise, and its file left to its creator at Close.
func TestFileListener(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "inherited.ipc")
	parent, err := Listen(path, ListenOptions{HealInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	f, err := parent.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	logs := &syncBuffer{}
	l, err := FileListener(f, path, ListenOptions{HealInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if l.Owner() != os.Geteuid() {
		t.Errorf("owner %d, want %d", l.Owner(), os.Geteuid())
	}
	serveListener(t, l)
	if !answers(path) {
		t.Fatal("no answer on the inherited socket")
	}
	os.Remove(path)
	waitFor(t, "the inherited socket to be bound again", func() bool { return answers(path) })
	waitFor(t, "the healing to be logged", func() bool { return strings.Contains(logs.String(), "socket file was gone: bound it again") })

	// Close leaves an inherited socket's file to whoever made it.
	path2 := filepath.Join(dir, "kept.ipc")
	p2, err := Listen(path2, ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	f2, _ := p2.File()
	defer f2.Close()
	l2, err := FileListener(f2, path2, ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
	if _, err := os.Stat(path2); err != nil {
		t.Errorf("closing an inherited listener removed its creator's socket file: %v", err)
	}
	c, err := net.Dial("unix", path2)
	if err != nil {
		t.Errorf("the creator's socket stopped listening: %v", err)
	} else {
		c.Close()
	}
}

func TestFileListenerRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	regular, err := os.Create(filepath.Join(dir, "regular"))
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	socketFile := func(typ int, bindListen bool) *os.File {
		fd, err := syscall.Socket(syscall.AF_UNIX, typ, 0)
		if err != nil {
			t.Fatal(err)
		}
		if bindListen {
			if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: filepath.Join(dir, "s"+time.Now().Format("150405.000000000"))}); err != nil {
				t.Fatal(err)
			}
		}
		f := os.NewFile(uintptr(fd), "socket")
		t.Cleanup(func() { f.Close() })
		return f
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcpFile, err := tcp.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer tcpFile.Close()
	cases := []struct {
		name string
		f    *os.File
		want string
	}{
		{"a regular file", regular, "it is not a socket"},
		{"a datagram socket", socketFile(syscall.SOCK_DGRAM, true), "it is a Unix datagram socket"},
		{"a stream socket not listening", socketFile(syscall.SOCK_STREAM, true), "not listening"},
		{"a TCP socket", tcpFile, "not a Unix socket"},
	}
	for _, tc := range cases {
		l, err := FileListener(tc.f, filepath.Join(dir, "x.ipc"), ListenOptions{})
		if err == nil {
			l.Close()
		}
		if !errors.Is(err, ErrNotListening) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "inherited fd") {
			t.Errorf("%s: %v, want ErrNotListening saying %q", tc.name, err, tc.want)
		}
	}
}

// An idle supervisor is never woken to check its socket: the check
// follows a change to the file, not a timer.
func TestSocketHealIsNotPolled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idle.ipc")
	l, err := Listen(path, ListenOptions{HealInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	serveListener(t, l) // closes l at the end
	// Other files of the directory do not matter either.
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "other"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := l.checks.Load(); n != 0 {
		t.Fatalf("the socket file was checked %d times in 200ms with nothing changed, want 0", n)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted socket to answer again", func() bool { return answers(path) })
	if n := l.checks.Load(); n == 0 {
		t.Fatal("healed without a check")
	}
}

// TestSocketHealsItsDirectory: the socket's whole directory removed (a
// cleanup of /run or /tmp) and made again later: the supervisor binds
// its socket again there. It said "retrying" and never did: the watch of
// the directory ended with it, and nothing looked again.
func TestSocketHealsItsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "heal.ipc")
	logs := &syncBuffer{}
	l, err := Listen(path, ListenOptions{HealInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stop := serveListener(t, l)
	defer stop()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the problem to be logged", func() bool { return strings.Contains(logs.String(), "cannot bind it again") })
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the socket to answer in the directory made again", func() bool { return answers(path) })
	// The new directory is watched: its socket file removed, it is bound
	// again, at the next check, not never.
	checks := l.checks.Load()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the socket removed from the new directory to answer again", func() bool { return answers(path) })
	if l.checks.Load() == checks {
		t.Error("bound again without a check")
	}
}
