package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpRestartThroughController(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opControllerReady(t, socket, "web=2,db=1")
	before := opChildren(t, socket)

	// One worker.
	stdout, stderr, code := opRun(t, nil, "restart", "--socket", socket, "web.1")
	if code != 0 {
		t.Fatalf("restart web.1: exit %d: %s", code, stderr)
	}
	mid := opChildren(t, socket)
	if mid["web.1"].PID == before["web.1"].PID || mid["web.0"].PID != before["web.0"].PID || mid["db.0"].PID != before["db.0"].PID {
		t.Errorf("restart web.1 changed the wrong pids: before %v, after %v", before, mid)
	}
	want := "restarted web.1: 1 worker, one at a time\n  web.1: pid " + strconv.Itoa(before["web.1"].PID) + " -> " + strconv.Itoa(mid["web.1"].PID) + "\n"
	if stdout != want {
		t.Errorf("restart web.1 said:\n%s\nwant:\n%s", stdout, want)
	}
	if mid["web.1"].Restarts != 1 {
		t.Errorf("web.1 restarts = %d", mid["web.1"].Restarts)
	}

	// A whole service, by name; a worker named by pid.
	if _, stderr, code := opRun(t, nil, "restart", "--socket", socket, "web"); code != 0 {
		t.Fatalf("restart web: exit %d: %s", code, stderr)
	}
	after := opChildren(t, socket)
	if after["web.0"].PID == mid["web.0"].PID || after["web.1"].PID == mid["web.1"].PID || after["db.0"].PID != before["db.0"].PID {
		t.Errorf("restart web: before %v, after %v", mid, after)
	}
	if _, stderr, code := opRun(t, nil, "restart", "--socket", socket, strconv.Itoa(after["db.0"].PID), "--output", "json"); code != 0 {
		t.Fatalf("restart by pid: exit %d: %s", code, stderr)
	}
	if last := opChildren(t, socket); last["db.0"].PID == after["db.0"].PID {
		t.Errorf("restart by pid: db.0 kept pid %d", last["db.0"].PID)
	}

	// Unknown: the candidates and the services.
	_, stderr, code = opRun(t, nil, "restart", "--socket", socket, "nosuch")
	if code != exitNotFound || !strings.Contains(stderr, `no worker matches "nosuch"`) || !strings.Contains(stderr, "the services are db, web") {
		t.Errorf("restart nosuch: exit %d: %s", code, stderr)
	}
	// A service's instance that does not exist: the same.
	_, stderr, code = opRun(t, nil, "restart", "--socket", socket, "web.7")
	if code != exitNotFound || stderr != "vigil: no worker web.7: service web has web.0, web.1\n" {
		t.Errorf("restart web.7: exit %d: %s", code, stderr)
	}
}

// reload --signal and restart --signal do what the original's reload and
// restart did: the supervisor signals its parent, HUP, then INT. Without
// --signal, both are operations of the controller, which this one (not
// vigil run) does not serve: the error says so, and how to signal it.
func TestOpReloadAndRestartSignal(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	ctl := opControllerReady(t, socket, "web=1")

	_, stderr, code := opRun(t, nil, "reload", "--socket", socket)
	if code != exitFailed || !strings.Contains(stderr, "does not serve reload") || !strings.Contains(stderr, "vigil reload --signal sends it SIGHUP") {
		t.Errorf("reload through a controller that does not serve it: exit %d: %s", code, stderr)
	}
	_, stderr, code = opRun(t, nil, "restart", "--socket", socket)
	if code != exitFailed || !strings.Contains(stderr, "restart_children: 'service' is required") {
		t.Errorf("restart of every service through a controller that does not serve it: exit %d: %s", code, stderr)
	}

	stdout, stderr, code := opRun(t, nil, "reload", "--signal", "--socket", socket)
	if code != 0 || !strings.HasPrefix(stdout, "sent SIGHUP to the controller: it reloads its configuration") {
		t.Fatalf("reload --signal: exit %d: %s%s", code, stdout, stderr)
	}
	ctl.expect(t, "signal HUP", 10*time.Second)

	stdout, stderr, code = opRun(t, nil, "restart", "--signal", "INT", "--socket", socket)
	if code != 0 || stdout != "sent SIGINT to the controller: it stops gracefully, and everything with it\n" {
		t.Fatalf("restart --signal INT: exit %d: %s%s", code, stdout, stderr)
	}
	ctl.expect(t, "signal INT", 10*time.Second)
	ctl.wait()

	// Restarting a service needs a controller.
	socket2 := opShortSocket(t)
	opSupervise(t, socket2)
	_, stderr, code = opRun(t, nil, "restart", "--socket", socket2, "web")
	if code != exitFailed || !strings.Contains(stderr, "restarting web needs the controller (`vigil run`), and none is registered") {
		t.Errorf("restart without controller: exit %d: %s", code, stderr)
	}
	for _, args := range [][]string{
		{"restart", "--signal", "KILL"},
		{"restart", "--signal", "INT", "web"},
		{"restart", "--signal", "INT", "--no-wait"},
		{"reload", "--signal", "--no-wait"},
	} {
		if _, stderr, code := opRun(t, nil, append(args, "--socket", socket2)...); code != exitUsage {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
	}
}

func TestOpProbes(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opControllerReady(t, socket, "web=2")
	probe := func(kind string) (string, string, int) {
		return opRun(t, nil, "probe", kind, "--socket", socket)
	}
	if stdout, stderr, code := probe("ready"); code != 0 || stdout != "ready: web 2/2\n" {
		t.Errorf("ready: exit %d: %s%s", code, stdout, stderr)
	}
	if stdout, stderr, code := probe("healthy"); code != 0 || !strings.HasPrefix(stdout, "healthy: ") {
		t.Errorf("healthy: exit %d: %s%s", code, stdout, stderr)
	}
	kids := opChildren(t, socket)
	ctlID := opConnIDs(t, socket)["controller"]
	setState := func(instance int, state string) {
		t.Helper()
		if _, stderr, code := opRun(t, nil, "forward", "--socket", socket, ctlID[:8], "set_state",
			"service=web", "instance="+strconv.Itoa(instance), "state="+state); code != 0 {
			t.Fatalf("set_state: exit %d: %s", code, stderr)
		}
	}
	setState(1, "unhealthy")
	_, stderr, code := probe("healthy")
	if want := "vigil: not healthy: web.1 (pid " + strconv.Itoa(kids["web.1"].PID); code != exitFailed || !strings.HasPrefix(stderr, want) ||
		!strings.HasSuffix(stderr, "is failing its health check\n") {
		t.Errorf("healthy with web.1 unhealthy: exit %d: %s", code, stderr)
	}
	if stdout, stderr, code := probe("ready"); code != 0 || stdout != "ready: web 1/2\n" {
		t.Errorf("ready with one ready: exit %d: %s%s", code, stdout, stderr)
	}
	setState(0, "starting")
	if _, stderr, code := probe("ready"); code != exitFailed || stderr != "vigil: not ready: web has no ready worker (1 starting, 1 unhealthy)\n" {
		t.Errorf("ready with none ready: exit %d: %q", code, stderr)
	}

	// No supervisor: a probe fails (exit 3, as every command), saying why.
	_, stderr, code = opRun(t, nil, "probe", "ready", "--socket", socket+".none")
	if code != exitUnreachable || !strings.Contains(stderr, "not ready: no supervisor at "+socket+".none") {
		t.Errorf("probe without supervisor: exit %d: %s", code, stderr)
	}
	if _, _, code := opRun(t, nil, "probe", "alive", "--socket", socket); code != exitUsage {
		t.Errorf("probe alive: exit %d", code)
	}
}

func TestOpProbeNotifyLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "notify.log")
	for _, c := range []struct {
		lines          string
		ready, healthy int
		reason         string
	}{
		{"", exitFailed, exitFailed, "has no message yet"},
		{`{"status":"Starting..."}` + "\n", exitFailed, 0, `not ready: the controller has not said it is ready ("Starting...")`},
		{`{"status":"Starting..."}` + "\n" + "garbage\n" + `{"ready":true,"status":"Running with 4 children."}` + "\n", 0, 0, `ready: the controller says it is ready ("Running with 4 children.")`},
		{`{"ready":true}` + "\n" + `{"reloading":true,"ready":false}` + "\n", exitFailed, 0, "not ready"},
		{`{"ready":true}` + "\n" + `{"status":"reload failed: bad config","errno":-1}` + "\n", 0, exitFailed, "not healthy: the controller's last message is an error: reload failed: bad config"},
		{`{"ready":true}` + "\n" + `{"stopping":true}` + "\n", exitFailed, exitFailed, "the controller is stopping"},
	} {
		if err := os.WriteFile(log, []byte(c.lines), 0o644); err != nil {
			t.Fatal(err)
		}
		outR, errR, codeR := opRun(t, nil, "probe", "ready", "--notify-log", log)
		outH, errH, codeH := opRun(t, nil, "probe", "healthy", "--notify-log", log)
		if codeR != c.ready || codeH != c.healthy {
			t.Errorf("%q: ready exit %d (want %d), healthy exit %d (want %d)", c.lines, codeR, c.ready, codeH, c.healthy)
		}
		if all := outR + errR + outH + errH; !strings.Contains(all, c.reason) {
			t.Errorf("%q: reasons %q lack %q", c.lines, all, c.reason)
		}
	}
	_, stderr, code := opRun(t, nil, "probe", "ready", "--notify-log", filepath.Join(dir, "none"))
	if code != exitFailed || !strings.Contains(stderr, "no notify log at ") {
		t.Errorf("missing log: exit %d: %s", code, stderr)
	}
}

func TestOpUnreachable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	socket := filepath.Join(dir, "none.ipc")
	for _, cmd := range [][]string{{"status"}, {"reload"}, {"restart"}, {"restart", "web"}, {"forward", "web.0", "x"}, {"dump", "heap", "web.0"}} {
		_, stderr, code := opRun(t, nil, append(cmd, "--socket", socket)...)
		want := "vigil: no supervisor at " + socket + ": is `vigil run` running here? (--socket to choose)\n"
		if code != exitUnreachable || stderr != want {
			t.Errorf("%v: exit %d: %q, want %q", cmd, code, stderr, want)
		}
	}
	// The default: supervisor.ipc in the working directory.
	c := exec.Command(vigilBin, "status")
	c.Dir = dir
	c.Env = append(os.Environ(), EnvSupervisorSocket+"=")
	out, _ := c.CombinedOutput()
	if c.ProcessState.ExitCode() != exitUnreachable || string(out) != "vigil: no supervisor at supervisor.ipc: is `vigil run` running here? (--socket to choose)\n" {
		t.Errorf("default socket: exit %d: %s", c.ProcessState.ExitCode(), out)
	}
}

// A uid the socket's permissions refuse is told which uid and where the
// allowed ones are set.
func TestOpRefusedUID(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run vigil as another uid")
	}
	t.Parallel()
	socket := opShortSocket(t)
	if err := os.Chmod(filepath.Dir(socket), 0o755); err != nil {
		t.Fatal(err)
	}
	opSupervise(t, socket)
	bin := linkVigil(t, filepath.Dir(socket))
	cmd := exec.Command(bin, "status", "--socket", socket)
	cmd.Dir = filepath.Dir(socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.CombinedOutput()
	want := "vigil: permission denied: uid 65534 may not connect to the supervisor at " + socket +
		" (it allows root, its own uid, and the uids and groups in supervisor.allow_uids / allow_groups of vigil.toml; `vigil supervise` takes --allow-uid / --allow-gid)\n"
	if cmd.ProcessState.ExitCode() != exitUnreachable || string(out) != want {
		t.Errorf("exit %d:\n%q\nwant\n%q", cmd.ProcessState.ExitCode(), out, want)
	}
}
