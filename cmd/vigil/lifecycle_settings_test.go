package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/testutil"
)

// More of the lifecycle against real `vigil run` processes: shutdown, the
// per-service settings (user, env_file, port), required and --strict.

// vigil shutdown stops the whole tree and returns once vigil run is gone.
func TestLifecycleShutdown(t *testing.T) {
	t.Parallel()
	r := startRun(t, lcService(t, "web", 2)+`
[services.off]
command = ["sleep", "300"]
count = 1
readiness = "started"
supervised = false
autostart = false
`)
	tr := r.waitTree("web ready", func(tr tree) bool {
		return len(tr.pids("web", "ready")) == 2 && len(tr.pids(SupervisorService, "ready")) == 1
	})
	pids := append(tr.pids("web", ""), tr.pids(SupervisorService, "")...)
	stdout := lcMust(t, r, "shutdown")
	if want := fmt.Sprintf("stopped: every service, the supervisor and vigil run (pid %d)\n", r.cmd.Process.Pid); stdout != want {
		t.Errorf("shutdown said %q, want %q", stdout, want)
	}
	r.waitExit("vigil shutdown")
	for _, pid := range append(pids, r.cmd.Process.Pid) {
		if alive(pid) {
			t.Errorf("process %d outlived vigil shutdown", pid)
		}
	}
	for _, p := range []string{r.socket, r.socket + ".lock"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after vigil shutdown: %v", p, err)
		}
	}
	if _, stderr, code := lcVigil(t, r, "shutdown"); code != exitUnreachable {
		t.Errorf("shutdown with nothing running: exit %d: %s", code, stderr)
	}
}

// procFile reads /proc/PID/NAME.
func procFile(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// env_file and ${port} reach the child (env's own keys win over the
// file's); ${service}, ${instance} and PORT are each instance's; and, as
// root, user drops the child to another uid.
func TestLifecycleUserEnvFilePort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.env"), []byte("# the app's settings\nA=from file\nB=from file\nexport C=\"two\\nlines\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePorts(t, 2) // sleep does not listen: any two numbers would do
	user := ""
	if os.Getuid() == 0 {
		user = `user = "65534"`
	}
	r := startRun(t, fmt.Sprintf(`
[services.app]
command = ["sleep", "${port}"]
count = 2
port = %d
readiness = "started"
supervised = false
graceful_stop = "1s"
dir = "/"
env_file = %q
env = { B = "from env", WHERE = "${service}.${instance}:${port}" }
%s
`, port, filepath.Join(dir, "app.env"), user))
	tr := r.waitTree("app ready", func(tr tree) bool { return len(tr.pids("app", "ready")) == 2 })
	for _, ch := range tr.children {
		if ch.Service != "app" {
			continue
		}
		p := strconv.Itoa(port + ch.Instance)
		if got, want := procFile(t, ch.PID, "cmdline"), "sleep\x00"+p+"\x00"; got != want {
			t.Errorf("app.%d's command line is %q, want %q", ch.Instance, got, want)
		}
		env := strings.Split(procFile(t, ch.PID, "environ"), "\x00")
		for _, kv := range []string{"PORT=" + p, "A=from file", "B=from env", "C=two\nlines", fmt.Sprintf("WHERE=app.%d:%s", ch.Instance, p)} {
			if !slices.Contains(env, kv) {
				t.Errorf("app.%d's environment lacks %q: %q", ch.Instance, kv, env)
			}
		}
		if user == "" {
			continue
		}
		status := procFile(t, ch.PID, "status")
		if !strings.Contains(status, "\nUid:\t65534\t65534\t65534\t65534\n") || !strings.Contains(status, "\nGid:\t65534\t65534\t65534\t65534\n") {
			t.Errorf("app.%d does not run as uid and gid 65534:\n%s", ch.Instance, status)
		}
	}
	if user == "" {
		t.Log("not root: user not tested")
	}
}

// A service with required = true that fails at start stops everything,
// and so does any service under vigil run --strict.
func TestLifecycleRequiredAndStrict(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, key string
		args      []string
	}{
		{"required", "required = true", nil},
		{"strict", "", []string{"--strict"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pidfile := filepath.Join(dir, "ok.pid")
			config := filepath.Join(dir, "vigil.toml")
			err := os.WriteFile(config, []byte(fmt.Sprintf(`
[services.ok]
command = ["sh", "-c", "echo $$ > %s; exec sleep 300"]
count = 1
readiness = "started"
supervised = false
graceful_stop = "1s"

[services.must]
command = ["sh", "-c", "sleep 1; exit 3"]
count = 1
supervised = false
%s
`, pidfile, c.key)), 0o644)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(vigilBin, append([]string{"run", "-c", config}, c.args...)...)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			var runErr error
			select {
			case runErr = <-exited:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				t.Fatalf("vigil run went on after must failed:\n%s", out.String())
			}
			var ee *exec.ExitError
			if !errors.As(runErr, &ee) || ee.ExitCode() != exitFailed {
				t.Errorf("vigil run: %v, want exit %d", runErr, exitFailed)
			}
			if !strings.Contains(out.String(), "required service must") {
				t.Errorf("vigil run does not say that the required service must failed:\n%s", out.String())
			}
			if ok := readPID(t, pidfile); !procGone(ok) {
				t.Errorf("ok (pid %d) outlived vigil run", ok)
			}
			if _, err := os.Stat(filepath.Join(dir, "supervisor.ipc")); !os.IsNotExist(err) {
				t.Errorf("the socket is left: %v", err)
			}
		})
	}
}
