package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCheckRefusesWhatRunRefuses is defect 8 of the process core: vigil
// check exits 0 on configurations vigil run then refuses. Each is refused
// by both, at once, naming the key and its line.
func TestCheckRefusesWhatRunRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, toml, want string
		setup            func(dir string)
	}{
		{"program not found", "[services.web]\ncommand = [\"no-such-program-vigil\"]\n",
			`:2: services.web.command: program "no-such-program-vigil" not found in PATH`, nil},
		{"program not executable", "[services.web]\ncommand = [\"./data.txt\"]\n",
			`:2: services.web.command: program `, func(dir string) { _ = os.WriteFile(filepath.Join(dir, "data.txt"), nil, 0o644) }},
		{"NUL in an argument", "[services.web]\ncommand = [\"sh\", \"-c\", \"a\\u0000b\"]\n",
			`:2: services.web.command: argument 2 ("a\x00b") contains a NUL byte`, nil},
		{"socket directory missing", "[supervisor]\nsocket = \"nowhere/s.ipc\"\n",
			`:2: supervisor.socket: the socket's directory `, nil},
		{"socket is a directory", "[supervisor]\nsocket = \"adir\"\n",
			`:2: supervisor.socket: `, func(dir string) { _ = os.Mkdir(filepath.Join(dir, "adir"), 0o755) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.setup != nil {
				tc.setup(dir)
			}
			config := filepath.Join(dir, "vigil.toml")
			if err := os.WriteFile(config, []byte(tc.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, sub := range []string{"check", "run"} {
				cmd := exec.Command(vigilBin, sub, "-c", config)
				cmd.Dir = dir
				done := make(chan struct{})
				time.AfterFunc(20*time.Second, func() {
					select {
					case <-done:
					default:
						_ = cmd.Process.Kill()
					}
				})
				out, err := cmd.CombinedOutput()
				close(done)
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || !strings.Contains(string(out), config+tc.want) {
					t.Errorf("vigil %s: %v:\n%s\nwant exit 2 and %q", sub, err, out, config+tc.want)
				}
				if strings.Contains(string(out), "supervisor.0 |") {
					t.Errorf("vigil %s started something before refusing:\n%s", sub, out)
				}
			}
		})
	}
}

// runAs65534 runs vigil as uid 65534 under `ulimit -u nproc` (bash's), from
// dir.
func runAs65534(t *testing.T, dir string, nproc int, args ...string) *exec.Cmd {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash for ulimit -u")
	}
	bin := filepath.Join(dir, "vigil")
	if _, err := os.Stat(bin); err != nil {
		bin = linkVigil(t, dir)
	}
	script := fmt.Sprintf(`ulimit -u %d && exec "$0" "$@"`, nproc)
	cmd := exec.Command(bash, append([]string{"-c", script, bin}, args...)...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}, Setpgid: true}
	return cmd
}

// userDir is a directory uid 65534 may read and write.
func userDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vigil-nproc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRunCountsBeyondTheProcessLimit is defect 6 of the process core: a
// count that cannot fit under RLIMIT_NPROC is refused at once, by check
// and by run, naming the limit, instead of filling it.
func TestRunCountsBeyondTheProcessLimit(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run vigil as another uid with a process limit")
	}
	dir := userDir(t)
	if err := os.WriteFile(filepath.Join(dir, "vigil.toml"), []byte("[services.web]\ncommand = [\"sleep\", \"300\"]\nreadiness = \"started\"\ncount = 10000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"check", "run"} {
		cmd := runAs65534(t, dir, 200, sub, "-c", "vigil.toml")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitUsage ||
			!strings.Contains(string(out), "services.web.count = 10000") || !strings.Contains(string(out), "RLIMIT_NPROC of uid 65534: 200") {
			t.Errorf("vigil %s: %v:\n%s", sub, err, out)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("vigil %s took %v to refuse", sub, d)
		}
	}
}

// TestRunSurvivesAFullProcessLimit: the counts fit, but a worker fills the
// limit with processes of its own; vigil keeps running and answering, a
// restart that cannot start its replacement fails with the reason and
// leaves the old worker, and once room is made it works.
func TestRunSurvivesAFullProcessLimit(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run vigil as another uid with a process limit")
	}
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("no perl to fill the process limit with")
	}
	dir := userDir(t)
	config := `[supervisor]
socket = "s.ipc"
allow_uids = [0]

[services.hog]
command = ["perl", "-e", "while (1) { my $p = fork; last unless defined $p; if (!$p) { sleep 300; exit } } open F, '>full'; sleep 300"]
readiness = "started"
count = 1
graceful_stop = "1s"

[services.web]
command = ["sleep", "300"]
readiness = "started"
count = 2
restart_delay = "50ms"
restart_delay_max = "200ms"
graceful_stop = "1s"
`
	if err := os.WriteFile(filepath.Join(dir, "vigil.toml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := runAs65534(t, dir, 150, "run", "-c", "vigil.toml")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("vigil run:\n%s", out.String())
		}
	}()
	waitUntil(t, "the hog filled the limit", func() bool {
		_, err := os.Stat(filepath.Join(dir, "full"))
		return err == nil
	})
	socket := filepath.Join(dir, "s.ipc")
	web := func() []int {
		var pids []int
		for _, c := range opChildren(t, socket) {
			if c.Service == "web" && c.PID != 0 {
				pids = append(pids, c.PID)
			}
		}
		return pids
	}
	pids := web()
	if len(pids) != 2 {
		t.Fatalf("web workers %v, want 2: %v", pids, opChildren(t, socket))
	}
	// The limit is full: a restart cannot start its replacement, says why,
	// and the old worker keeps running.
	stdout, stderr, code := opRun(t, nil, "restart", "--socket", socket, "web.0")
	if code != exitFailed || !strings.Contains(stdout+stderr, "resource temporarily unavailable") {
		t.Errorf("restart web.0 with the limit full: exit %d: %s%s", code, stdout, stderr)
	}
	if got := web(); len(got) != 2 || got[0] != pids[0] && got[1] != pids[0] {
		t.Errorf("web workers %v after a failed restart, want %v still", got, pids)
	}
	select {
	case err := <-exited:
		t.Fatalf("vigil run died with the process limit full: %v", err)
	default:
	}
	// Room again: the hog is stopped (killed, it would be restarted and
	// fill the limit again), and the restart works.
	if _, stderr, code := opRun(t, nil, "stop", "--socket", socket, "hog"); code != 0 {
		t.Fatalf("stop hog: exit %d: %s", code, stderr)
	}
	waitUntil(t, "a restart with room", func() bool {
		_, _, code := opRun(t, nil, "restart", "--socket", socket, "web.0")
		return code == 0
	})
	waitUntil(t, "web back to 2 workers", func() bool { return len(web()) == 2 })
}

// vigil check warns an unprivileged user whose workers' pipes alone fill
// the share of pipe memory the kernel holds it to (fs.pipe-user-pages-soft),
// and does not when they fit (vigil run logs the same warning).
func TestCheckWarnsOfThePipeShare(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run vigil as another uid")
	}
	b, err := os.ReadFile("/proc/sys/fs/pipe-user-pages-soft")
	if err != nil {
		t.Skip(err)
	}
	share, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if share == 0 {
		t.Skip("no pipe-user-pages-soft here")
	}
	over := share/(childPipes*16) + 1 // workers, with the supervisor, past the share
	dir := userDir(t)
	for _, tc := range []struct {
		count int
		warn  bool
	}{{over, true}, {over / 4, false}} {
		if err := os.WriteFile(filepath.Join(dir, "vigil.toml"), []byte(fmt.Sprintf("[services.web]\ncommand = [\"sleep\", \"300\"]\nreadiness = \"started\"\ncount = %d\n", tc.count)), 0o644); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "vigil")
		if _, err := os.Stat(bin); err != nil {
			bin = linkVigil(t, dir)
		}
		cmd := exec.Command(bin, "check", "-c", "vigil.toml")
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if out, err := cmd.Output(); err != nil {
			t.Fatalf("vigil check, count = %d: %v:\n%s%s", tc.count, err, out, stderr.String())
		}
		want := fmt.Sprintf("vigil: warning: vigil.toml: vigil run's %d children (the workers and the supervisor) hold %d pipes of 64 KiB (%d pages), past the %d pages of pipe memory uid 65534 may have (fs.pipe-user-pages-soft)",
			tc.count+1, 3*(tc.count+1), 48*(tc.count+1), share)
		if got := strings.Contains(stderr.String(), want); got != tc.warn {
			t.Errorf("vigil check, count = %d: stderr\n%s\nwarns: %v, want %v (%q)", tc.count, stderr.String(), got, tc.warn, want)
		}
	}
}

// TestRunCountsBeyondTheDescriptorLimit: vigil run holds four descriptors
// for each worker (its readiness, stdout and stderr pipes, a pidfd); counts
// that cannot fit under RLIMIT_NOFILE (its hard limit: the Go runtime
// raises the soft one to it) are refused at once, by check and by run,
// naming the limit, instead of starting the workers that fit and retrying
// the others for good. Counts that fit start.
func TestRunCountsBeyondTheDescriptorLimit(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash for ulimit -n")
	}
	dir := t.TempDir()
	write := func(count int) {
		t.Helper()
		conf := fmt.Sprintf("[supervisor]\nsocket = \"s.ipc\"\n\n[services.web]\ncommand = [\"sleep\", \"300\"]\nreadiness = \"started\"\ncount = %d\n", count)
		if err := os.WriteFile(filepath.Join(dir, "vigil.toml"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	limited := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bash, append([]string{"-c", `ulimit -n 256 && exec "$0" "$@"`, vigilBin}, args...)...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return cmd
	}
	write(100)
	for _, sub := range []string{"check", "run"} {
		cmd := limited(sub, "-c", "vigil.toml")
		var output lockedBuffer
		cmd.Stdout, cmd.Stderr = &output, &output
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pgid := cmd.Process.Pid
		kill := time.AfterFunc(20*time.Second, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
		err := cmd.Wait()
		kill.Stop()
		out := output.String()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitUsage ||
			!strings.Contains(out, "services.web.count = 100") || !strings.Contains(out, "RLIMIT_NOFILE: 256") {
			t.Errorf("vigil %s: %v:\n%s", sub, err, out)
		}
		if strings.Contains(out, "supervisor.0 |") {
			t.Errorf("vigil %s started something before refusing:\n%s", sub, out)
		}
	}
	write(20)
	out20, err := limited("check", "-c", "vigil.toml").CombinedOutput()
	if err != nil {
		t.Fatalf("vigil check of 20 workers under 256 descriptors: %v\n%s", err, out20)
	}
	// The supervisor's max_connections (10,000 by default) cannot be
	// served either: check says so, and what the supervisor will do.
	if !strings.Contains(string(out20), "warning: ") || !strings.Contains(string(out20), "supervisor.max_connections = 10000") ||
		!strings.Contains(string(out20), "at most 192 connections at once") {
		t.Errorf("vigil check under 256 descriptors, max_connections 10000: no warning:\n%s", out20)
	}
	cmd := limited("run", "-c", "vigil.toml")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "Running with 21 children") {
		if time.Now().After(deadline) {
			t.Fatalf("20 workers under 256 descriptors did not all start:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("vigil run: %v\n%s", err, out.String())
	}
}
