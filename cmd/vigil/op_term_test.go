package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// opPty opens a pseudo-terminal: the master to read from, the slave to give
// a command as its output.
func opPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// Colour on a terminal only, and never with NO_COLOR.
func TestOpColourOnTerminalOnly(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opControllerReady(t, socket, "web=1")
	for _, c := range []struct {
		noColour string
		want     bool
	}{{"", true}, {"1", false}} {
		m, s := opPty(t)
		cmd := exec.Command(vigilBin, "status", "--socket", socket)
		cmd.Env = append(os.Environ(), "NO_COLOR="+c.noColour, "TERM=xterm")
		cmd.Stdout = s
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		var out bytes.Buffer
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.Copy(&out, m) // ends with EIO once the slave is closed
		}()
		err := cmd.Run()
		s.Close()
		<-done
		if err != nil {
			t.Fatalf("status on a terminal: %v: %s", err, stderr.String())
		}
		if got := strings.Contains(out.String(), ansiGreen+"ready"); got != c.want {
			t.Errorf("NO_COLOR=%q: coloured %v, want %v:\n%q", c.noColour, got, c.want, out.String())
		}
	}
	// Not a terminal: no colour.
	stdout, _, _ := opRun(t, nil, "status", "--socket", socket)
	if strings.Contains(stdout, "\x1b[") {
		t.Errorf("colour on a pipe: %q", stdout)
	}
}

// --watch redraws every second until interrupted, then exits 0.
func TestOpStatusWatch(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opControllerReady(t, socket, "web=1")
	cmd := exec.Command(vigilBin, "status", "--watch", "--socket", socket)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	frames := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() && frames < 2 {
		if strings.HasPrefix(sc.Text(), "vigil status --socket "+socket+", every 1s: ") {
			frames++
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	go io.Copy(io.Discard, out)
	err = cmd.Wait()
	if frames < 2 || err != nil {
		t.Errorf("watch: %d frames, exit %v", frames, err)
	}
}

// A supervisor that accepts but never answers: the timeout names the
// operation, the socket and how long.
func TestOpStatusTimeout(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	accepting := make(chan struct{})
	defer func() {
		l.Close()
		<-accepting
	}()
	go func() {
		defer close(accepting)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	_, stderr, code := opRun(t, nil, "status", "--socket", socket, "--timeout", "300ms")
	want := "vigil: status: no answer from the supervisor at " + socket + " after 300ms (--timeout to wait longer)\n"
	if code != exitUnreachable || stderr != want {
		t.Errorf("exit %d: %q, want %q", code, stderr, want)
	}
	_, stderr, code = opRun(t, nil, "probe", "healthy", "--socket", socket)
	// Not healthy, and no answer: 3, as for every command.
	if code != exitUnreachable || !strings.HasPrefix(stderr, "vigil: not healthy: status: no answer from the supervisor at "+socket+" after 1s") {
		t.Errorf("probe healthy: exit %d: %q", code, stderr)
	}
}

// The socket's file lets uid 65534 connect, but the supervisor's own check
// refuses it and closes the connection.
func TestOpRefusedBySupervisor(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run vigil as another uid")
	}
	t.Parallel()
	socket := opShortSocket(t)
	dir := filepath.Dir(socket)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opSupervise(t, socket)
	if err := os.Chmod(socket, 0o666); err != nil {
		t.Fatal(err)
	}
	bin := linkVigil(t, dir)
	cmd := exec.Command(bin, "status", "--socket", socket)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUnreachable ||
		!strings.Contains(string(out), "the supervisor at "+socket+" closed the connection before answering") ||
		!strings.Contains(string(out), "refusing uid 65534") {
		t.Errorf("%v: %s", err, out)
	}
}
