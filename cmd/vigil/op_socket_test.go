package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

func init() {
	// hog MARKER: touches 64 MiB, then waits for SIGINT or SIGTERM (which
	// a shell's background job would otherwise ignore).
	helpers["hog"] = func(args []string) int {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		b, err := unix.Mmap(-1, 0, 64<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return 1
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		<-sigs
		return 0
	}
}

// Defect 7: with the controller stopped, probe blamed the supervisor.
func TestProbeNamesTheControllerThatDoesNotAnswer(t *testing.T) {
	socket := opShortSocket(t)
	ctl := opControllerReady(t, socket, "web=1")
	if err := ctl.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.cmd.Process.Signal(syscall.SIGCONT) })

	_, stderr, code := opRun(t, nil, "probe", "ready", "--socket", socket)
	pid := strconv.Itoa(ctl.cmd.Process.Pid)
	if code != exitFailed || !strings.Contains(stderr, "not ready: controller") ||
		!strings.Contains(stderr, "the controller (pid "+pid+") did not answer within") || strings.Contains(stderr, "no answer from the supervisor") {
		t.Errorf("probe ready with the controller stopped: exit %d\n%s", code, stderr)
	}
	stdout, stderr, code := opRun(t, nil, "status", "--socket", socket, "--timeout", "2s")
	if code != 0 || !strings.Contains(stdout, "warning: controller") || !strings.Contains(stdout, "the controller (pid "+pid+") did not answer within") {
		t.Errorf("status with the controller stopped: exit %d\n%s%s", code, stdout, stderr)
	}
}

// Issue 9: `vigil supervise --listen-fd N` serves a socket bound by another
// process (vigil run), beside an older supervisor on the same socket, and
// heals it when its file is removed.
func TestSuperviseListenFD(t *testing.T) {
	socket := opShortSocket(t)
	bound, err := supervisor.Listen(socket, supervisor.ListenOptions{HealInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer bound.Close()
	f, err := bound.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := func() (*exec.Cmd, *bufio.Reader) {
		cmd := exec.Command(vigilBin, "supervise", "--listen-fd", "3", "--socket", socket)
		cmd.ExtraFiles = []*os.File{f}
		errs, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		})
		return cmd, bufio.NewReader(errs)
	}
	expectLog := func(r *bufio.Reader, want string) {
		t.Helper()
		lines := make(chan string)
		go func() {
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					close(lines)
					return
				}
				if strings.Contains(l, want) {
					lines <- l
					// Drain the rest, so that the supervisor never blocks on
					// its stderr; this ends when the supervisor does.
					for {
						if _, err := r.ReadString('\n'); err != nil {
							return
						}
					}
				}
			}
		}()
		select {
		case _, ok := <-lines:
			if !ok {
				t.Fatalf("the supervisor ended without logging %q", want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the supervisor did not log %q", want)
		}
	}
	first, firstLog := start()
	expectLog(firstLog, "inherited_fd=3")
	if _, stderr, code := opRun(t, nil, "status", "--socket", socket); code != 0 {
		t.Fatalf("status through the inherited socket: %d %s", code, stderr)
	}
	// A second generation starts beside the first on the same socket; the
	// first stops; the socket keeps answering, its file in place.
	_, secondLog := start()
	expectLog(secondLog, "inherited_fd=3")
	first.Process.Signal(syscall.SIGTERM)
	if err := first.Wait(); err != nil {
		t.Fatalf("the first supervisor: %v", err)
	}
	if _, err := os.Stat(socket); err != nil {
		t.Fatalf("the first supervisor removed the socket it was handed: %v", err)
	}
	if _, stderr, code := opRun(t, nil, "status", "--socket", socket); code != 0 {
		t.Fatalf("status after the first supervisor stopped: %d %s", code, stderr)
	}
	// Its file removed, the socket is bound again.
	os.Remove(socket)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, code := opRun(t, nil, "status", "--socket", socket)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the supervisor did not bind its removed socket again")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestSuperviseListenFDRefusesAFile(t *testing.T) {
	regular, err := os.CreateTemp(t.TempDir(), "notasocket")
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	cmd := exec.Command(vigilBin, "supervise", "--listen-fd", "3", "--socket", opShortSocket(t))
	cmd.ExtraFiles = []*os.File{regular}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "--listen-fd 3: inherited fd") || !strings.Contains(string(out), "not a listening Unix stream socket: it is not a socket") {
		t.Errorf("supervise --listen-fd on a regular file: %v\n%s", err, out)
	}
}

// Defect 1, as reported: `vigil supervise` in its own pid namespace, a
// memory limit, and a client outside naming a process inside. The
// client's pid is unknown to the supervisor, so its registration is not
// verified and the monitor leaves the process alone; nor may it register
// as the controller.
func TestMemoryMonitorIgnoresPeersOutsideItsPidNamespace(t *testing.T) {
	if out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot make a pid namespace here (unshare --pid --fork --mount-proc: %v: %s)", err, strings.TrimSpace(string(out)))
	}
	dir := t.TempDir()
	socket := opShortSocket(t)
	cfg := filepath.Join(dir, "vigil.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`[supervisor]
socket = %q
[supervisor.monitors.memory]
interval = "300ms"
maximum_size_limit = "16MiB"
`, socket)), 0o644); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("hog-%d-%d", os.Getpid(), time.Now().UnixNano())
	script := fmt.Sprintf(`%s=hog %q %s & echo $!; exec %q supervise --config %q`, helperEnv, exe, marker, vigilBin, cfg)
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	hogPID, _ := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || hogPID <= 0 {
		t.Fatalf("the hog's pid in the namespace: %q %v", line, err)
	}
	opWaitSocket(t, socket)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	impostor, err := supervisor.DialOptions(ctx, socket, supervisor.ClientOptions{Handlers: rpc.Handlers{}})
	if err != nil {
		t.Fatal(err)
	}
	defer impostor.Close()
	_, err = impostor.Register(ctx, map[string]any{"role": "controller", "process_id": os.Getpid()})
	var re *rpc.RemoteError
	if !errors.As(err, &re) || re.Class != "PermissionError" {
		t.Errorf("a peer outside the namespace registering as the controller: %v", err)
	}
	c, err := supervisor.Dial(ctx, socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Register(ctx, map[string]any{"process_id": hogPID, "name": "victim"}); err != nil {
		t.Fatal(err)
	}
	// Many full checks pass; the hog, 48 MiB over the limit, lives.
	time.Sleep(3 * time.Second)
	if !processWithArg(marker) {
		t.Fatal("the memory monitor stopped a process named by a peer outside its pid namespace")
	}
	stdout, stderr, code := opRun(t, nil, "status", "--socket", socket)
	if code != 0 || !strings.Contains(stdout, "1 registration unverified") {
		t.Errorf("status does not say the registration is unverified: exit %d\n%s%s", code, stdout, stderr)
	}
}

// processWithArg reports whether a running process has arg among its
// arguments.
func processWithArg(arg string) bool {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err == nil && strings.Contains(string(b), "\x00"+arg+"\x00") {
			stat, _ := os.ReadFile(filepath.Join(filepath.Dir(d), "stat"))
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 && !strings.HasPrefix(string(stat[i+1:]), " Z") {
				return true
			}
		}
	}
	return false
}

// The roles of [supervisor] reach the supervisor, and a refused operator
// hears which role it lacks and which key grants it.
func TestRolesFromConfig(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run vigil as another uid")
	}
	socket := opShortSocket(t)
	dir := filepath.Dir(socket)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "vigil.toml")
	if err := os.WriteFile(cfg, []byte(`[supervisor]
allow_uids = [65534]
readers = ["group:4343"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	opSupervise(t, socket, "--config", cfg)
	bin := filepath.Join(dir, "vigil")
	if err := os.Link(vigilBin, bin); err != nil {
		t.Skipf("cannot link the vigil binary where uid 65534 can reach it: %v", err)
	}
	statusAs := func(groups ...uint32) (string, int) {
		cmd := exec.Command(bin, "status", "--socket", socket)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: groups}}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		return string(out), 0
	}
	out, code := statusAs()
	if code != exitFailed || !strings.Contains(out, "status: refused by the supervisor at "+socket+`: status needs the role "read", which uid 65534`) ||
		!strings.Contains(out, "see supervisor.readers") {
		t.Errorf("a non-reader's status: exit %d\n%s", code, out)
	}
	if out, code := statusAs(4343); code != 0 || !strings.Contains(out, "no workers") {
		t.Errorf("a reader's status: exit %d\n%s", code, out)
	}
}
