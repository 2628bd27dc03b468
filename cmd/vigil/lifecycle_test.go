package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vigild/vigil/internal/testutil"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/worker"
)

// The lifecycle commands against real `vigil run` processes: services one
// at a time.

func init() {
	// lc-http-worker NAME: serves NAME over HTTP on 127.0.0.1:$PORT, says
	// ready once it listens, and runs until SIGINT or SIGTERM.
	helpers["lc-http-worker"] = func(args []string) int {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, strings.Join(args, " "))
		})}
		served := make(chan struct{})
		go func() {
			defer close(served)
			_ = srv.Serve(ln)
		}()
		n, err := worker.NewNotifier(os.Getenv, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		_ = n.Ready()
		<-ctx.Done()
		_ = srv.Close()
		<-served
		return 0
	}
}

// lcService is a service of run-worker helpers (supervised, ready when
// they say so), with more environment variables (`K = "V"`) if given.
func lcService(t *testing.T, name string, count int, env ...string) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	vars := append([]string{helperEnv + ` = "run-worker"`, `GORACE = "atexit_sleep_ms=0"`}, env...)
	return fmt.Sprintf(`
[services.%s]
command = [%q]
count = %d
graceful_stop = "5s"
startup_timeout = "30s"
restart_delay = "20ms"
env = { %s }
`, name, exe, count, strings.Join(vars, ", "))
}

// lcVigil runs an operator command against r's socket.
func lcVigil(t *testing.T, r *runner, args ...string) (string, string, int) {
	t.Helper()
	return opRun(t, nil, append(args, "--socket", r.socket)...)
}

// lcMust runs an operator command that must exit 0, and returns its stdout.
func lcMust(t *testing.T, r *runner, args ...string) string {
	t.Helper()
	stdout, stderr, code := lcVigil(t, r, args...)
	if code != 0 {
		t.Fatalf("vigil %s: exit %d: %s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// samePIDs fails the test for each named instance whose pid changed.
func samePIDs(t *testing.T, what string, before, after map[string]statusview.Child, names ...string) {
	t.Helper()
	for _, n := range names {
		if before[n].PID == 0 || after[n].PID != before[n].PID {
			t.Errorf("%s: %s's pid went from %d to %d", what, n, before[n].PID, after[n].PID)
		}
	}
}

// A service that never says ready and one that fails at start, beside a
// healthy one: the healthy one serves, status shows all three (and why
// the failed one failed), and the probe names the two that are not ready.
func TestLifecycleNeverReadyBesideHealthy(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePorts(t, 2)
	r := startRun(t, fmt.Sprintf(`
[services.web]
command = [%q, "${service}.${instance}"]
count = 2
port = %d
graceful_stop = "5s"
env = { %s = "lc-http-worker", GORACE = "atexit_sleep_ms=0" }

[services.never]
command = ["sleep", "300"]
count = 1
supervised = false
graceful_stop = "1s"

[services.broken]
command = ["sh", "-c", "exit 3"]
count = 1
supervised = false
restart_delay = "20ms"
start_limit = { burst = 2, interval = "60s" }
`, exe, port, helperEnv))
	r.waitTree("web ready, broken failed, never starting", func(tr tree) bool {
		return len(tr.pids("web", "ready")) == 2 && len(tr.pids("broken", "failed")) == 1 && len(tr.pids("never", "starting")) == 1
	})
	for i := range 2 {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port+i))
		if err != nil {
			t.Fatalf("web.%d does not serve: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "web." + strconv.Itoa(i); string(body) != want {
			t.Errorf("port %d answered %q, want %q", port+i, body, want)
		}
	}

	stdout := lcMust(t, r, "status")
	lines := strings.Split(stdout, "\n")
	for _, want := range []string{"broken 0 - - failed", "never 0 PID - starting", "web 0 PID - ready", "web 1 PID - ready"} {
		found := false
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) >= 5 {
				if _, err := strconv.Atoi(f[2]); err == nil {
					f[2] = "PID"
				}
				found = found || strings.Join(f[:5], " ") == want
			}
		}
		if !found {
			t.Errorf("status has no row %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stdout, "\nbroken.0 failed: started 2 times within 1m0s (start_limit)") || !strings.Contains(stdout, "(vigil start broken.0 retries)\n") {
		t.Errorf("status does not say why broken.0 failed:\n%s", stdout)
	}

	_, stderr, code := lcVigil(t, r, "probe", "ready")
	if code != exitFailed || !strings.HasPrefix(stderr, "vigil: not ready: broken failed: started 2 times within 1m0s (start_limit)") ||
		!strings.Contains(stderr, "; vigil start broken retries; never has no ready worker (1 starting") {
		t.Errorf("probe ready: exit %d: %s", code, stderr)
	}
	// The one that cannot start is stopped: ready, the others serving.
	lcMust(t, r, "stop", "never")
	stdout, stderr, code = lcVigil(t, r, "probe", "ready")
	if code != exitFailed || !strings.Contains(stderr, "broken failed") || strings.Contains(stderr, "never") {
		t.Errorf("probe ready with never stopped: exit %d: %s%s", code, stdout, stderr)
	}
}

// stop, start and scale of one service, restart of one and of all: the
// other services' pids do not change; autostart = false leaves a service
// stopped until vigil start; --no-wait returns before the outcome.
func TestLifecycleStopStartScale(t *testing.T) {
	t.Parallel()
	r := startRun(t, lcService(t, "web", 2)+lcService(t, "db", 1)+`
[services.slow]
command = ["sh", "-c", "sleep 3; echo '{\"ready\":true}' >&3; exec sleep 300"]
count = 1
supervised = false
autostart = false
graceful_stop = "1s"
`)
	r.waitTree("web and db ready, slow stopped", func(tr tree) bool {
		return len(tr.pids("web", "ready")) == 2 && len(tr.pids("db", "ready")) == 1 && len(tr.pids("slow", "stopped")) == 1
	})
	k0 := opChildren(t, r.socket)
	// slow is stopped, being meant not to run: it does not make vigil not
	// ready.
	if stdout := lcMust(t, r, "probe", "ready"); stdout != "ready: db 1/1, supervisor 1/1, web 2/2 (stopped: slow)\n" {
		t.Errorf("probe ready with slow stopped: %q", stdout)
	}

	stdout := lcMust(t, r, "stop", "web.1")
	if want := fmt.Sprintf("stopped web.1: 1 worker (pid %d); it stays stopped until vigil start web.1\n", k0["web.1"].PID); stdout != want {
		t.Errorf("stop web.1 said %q, want %q", stdout, want)
	}
	k1 := opChildren(t, r.socket)
	if k1["web.1"].State != "stopped" || k1["web.1"].PID != 0 || alive(k0["web.1"].PID) {
		t.Errorf("web.1 after stop: %+v (its old pid alive: %v)", k1["web.1"], alive(k0["web.1"].PID))
	}
	samePIDs(t, "stop web.1", k0, k1, "web.0", "db.0")

	stdout = lcMust(t, r, "start", "web")
	k2 := opChildren(t, r.socket)
	if want := fmt.Sprintf("started service web: 1 worker ready, 1 already running\n  web.1: pid %d, ready\n", k2["web.1"].PID); stdout != want {
		t.Errorf("start web said %q, want %q", stdout, want)
	}
	samePIDs(t, "start web", k0, k2, "web.0", "db.0")

	stdout = lcMust(t, r, "scale", "web", "3")
	k3 := opChildren(t, r.socket)
	if want := fmt.Sprintf("scaled web from 2 to 3 instances: started web.2 (pid %d)\n", k3["web.2"].PID); stdout != want || k3["web.2"].State != "ready" {
		t.Errorf("scale web 3 said %q, want %q; web.2 is %+v", stdout, want, k3["web.2"])
	}
	samePIDs(t, "scale web 3", k2, k3, "web.0", "web.1", "db.0")

	stdout = lcMust(t, r, "scale", "web", "1")
	k4 := opChildren(t, r.socket)
	if want := fmt.Sprintf("scaled web from 3 to 1 instance: stopped web.1 (pid %d), web.2 (pid %d)\n", k3["web.1"].PID, k3["web.2"].PID); stdout != want {
		t.Errorf("scale web 1 said %q, want %q", stdout, want)
	}
	if _, ok := k4["web.1"]; ok || alive(k3["web.1"].PID) || alive(k3["web.2"].PID) {
		t.Errorf("web.1 and web.2 left after scale web 1: %v", k4)
	}
	samePIDs(t, "scale web 1", k3, k4, "web.0", "db.0")

	lcMust(t, r, "restart", "db")
	k5 := opChildren(t, r.socket)
	if k5["db.0"].PID == k4["db.0"].PID || k5["db.0"].State != "ready" {
		t.Errorf("restart db: db.0 %+v, was pid %d", k5["db.0"], k4["db.0"].PID)
	}
	samePIDs(t, "restart db", k4, k5, "web.0")

	// --no-wait: slow takes 3 s to say ready; the command returns before.
	stdout = lcMust(t, r, "start", "slow", "--no-wait")
	if stdout != "start slow: under way (the controller has it; vigil status to follow)\n" {
		t.Errorf("start slow --no-wait said %q", stdout)
	}
	r.waitTree("slow ready", func(tr tree) bool { return len(tr.pids("slow", "ready")) == 1 })
	k6 := opChildren(t, r.socket)
	samePIDs(t, "start slow", k5, k6, "web.0", "db.0")

	// Every service, one at a time; the supervisor is not among them.
	sup := r.waitTree("", func(tree) bool { return true }).pids(SupervisorService, "")
	stdout = lcMust(t, r, "restart")
	if !strings.HasPrefix(stdout, "restarted every service: 3 workers, one at a time\n") {
		t.Errorf("restart said %q", stdout)
	}
	k7 := opChildren(t, r.socket)
	for _, n := range []string{"web.0", "db.0", "slow.0"} {
		if k7[n].PID == k6[n].PID || k7[n].State != "ready" {
			t.Errorf("restart: %s is %+v, was pid %d", n, k7[n], k6[n].PID)
		}
	}
	if now := r.waitTree("", func(tree) bool { return true }).pids(SupervisorService, ""); len(now) != 1 || now[0] != sup[0] {
		t.Errorf("restart of every service restarted the supervisor: %v, then %v", sup, now)
	}

	// Everything stopped but vigil run and its supervisor; then started.
	lcMust(t, r, "stop", "all")
	tr := r.waitTree("", func(tree) bool { return true })
	if len(tr.pids("web", "stopped"))+len(tr.pids("db", "stopped"))+len(tr.pids("slow", "stopped")) != 3 || len(tr.pids(SupervisorService, "ready")) != 1 {
		t.Errorf("after stop all: %+v", tr.children)
	}
	lcMust(t, r, "start", "all", "--timeout", "1m")
	tr = r.waitTree("", func(tree) bool { return true })
	if len(tr.pids("web", "ready"))+len(tr.pids("db", "ready"))+len(tr.pids("slow", "ready")) != 3 {
		t.Errorf("after start all: %+v", tr.children)
	}
}

// A reload applies the configuration by difference: a change to one
// service's environment restarts only that service's workers, and the
// command says so; a broken configuration is refused with its key and
// line, and nothing changes. The operator commands find the socket in
// ./vigil.toml, or in the file -c names. Then vigil shutdown --no-wait.
func TestLifecycleReload(t *testing.T) {
	t.Parallel()
	// The socket is not the default one: the commands must read it from
	// the configuration.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	head := "[supervisor]\nsocket = \"run/vigil.ipc\"\n"
	config := filepath.Join(dir, "vigil.toml")
	if err := os.WriteFile(config, []byte(head+lcService(t, "web", 2)+lcService(t, "db", 1, `GEN = "1"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startRunFile(t, config, filepath.Join(dir, "run", "vigil.ipc"))
	r.waitTree("web and db ready", func(tr tree) bool {
		return len(tr.pids("web", "ready")) == 2 && len(tr.pids("db", "ready")) == 1
	})
	k0 := opChildren(t, r.socket)

	// db's environment changes: db alone is replaced. vigil reload, run in
	// the configuration's directory, finds the socket in ./vigil.toml.
	if err := os.WriteFile(r.config, []byte(head+lcService(t, "web", 2)+lcService(t, "db", 1, `GEN = "2"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := opRunIn(t, r.dir, nil, "reload")
	if code != 0 {
		t.Fatalf("reload: exit %d: %s%s", code, stdout, stderr)
	}
	k1 := opChildren(t, r.socket)
	if k1["db.0"].PID == k0["db.0"].PID || k1["db.0"].State != "ready" {
		t.Errorf("reload: db.0 is %+v, was pid %d", k1["db.0"], k0["db.0"].PID)
	}
	samePIDs(t, "reload of db's env", k0, k1, "web.0", "web.1")
	want := fmt.Sprintf("reload done: 1 replaced, 2 unchanged\n  db: replaced, pid %d -> %d\n  unchanged: supervisor, web\n", k0["db.0"].PID, k1["db.0"].PID)
	if stdout != want {
		t.Errorf("reload said\n%s\nwant\n%s", stdout, want)
	}

	// A broken configuration: exit 1 with the key and line; nothing changes.
	// -c names the file, from another directory.
	broken := head + lcService(t, "web", 2) + lcService(t, "db", 1, `GEN = "3"`) + "restart = \"sometimes\"\n"
	line := strings.Count(broken, "\n")
	if err := os.WriteFile(r.config, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = opRunIn(t, t.TempDir(), nil, "reload", "-c", r.config)
	if want := fmt.Sprintf("vigil: reload: the configuration is refused: %s:%d: services.db.restart: ", r.config, line); code != exitFailed || !strings.HasPrefix(stderr, want) {
		t.Errorf("reload of a broken configuration: exit %d: %q, want the prefix %q", code, stderr, want)
	}
	k2 := opChildren(t, r.socket)
	samePIDs(t, "a refused reload", k1, k2, "web.0", "web.1", "db.0")

	// The same configuration again: nothing changes.
	if err := os.WriteFile(r.config, []byte(head+lcService(t, "web", 2)+lcService(t, "db", 1, `GEN = "2"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	if stdout := lcMust(t, r, "reload"); stdout != "reload done: nothing changed (supervisor, db, web unchanged)\n" {
		t.Errorf("reload of the same configuration said %q", stdout)
	}
	samePIDs(t, "a reload that changes nothing", k1, opChildren(t, r.socket), "web.0", "web.1", "db.0")

	// vigil shutdown --no-wait: it returns; vigil run stops everything and
	// exits 0.
	if stdout := lcMust(t, r, "shutdown", "--no-wait"); !strings.HasPrefix(stdout, "shutting down: vigil run (pid "+strconv.Itoa(r.cmd.Process.Pid)+")") {
		t.Errorf("shutdown --no-wait said %q", stdout)
	}
	r.waitExit("vigil shutdown --no-wait")
	for _, ch := range k2 {
		if alive(ch.PID) {
			t.Errorf("%s.%d (pid %d) outlived vigil shutdown", ch.Service, ch.Instance, ch.PID)
		}
	}
}

// opRunIn runs the vigil binary in dir.
func opRunIn(t *testing.T, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(vigilBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=", EnvSupervisorSocket+"=")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("vigil %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), 0
}
