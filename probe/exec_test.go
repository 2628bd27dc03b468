//go:build linux

package probe

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func shSpec(script string) Spec {
	return Spec{Exec: &Exec{Argv: []string{"sh", "-c", script}}}
}

func TestExecOutcomes(t *testing.T) {
	tests := []struct {
		spec Spec
		want string // "" for a pass
	}{
		{shSpec("exit 0"), ""},
		{shSpec("exit 1"), "sh: exit status 1"},
		{shSpec("exit 7"), "sh: exit status 7"},
		{shSpec("kill -TERM $$"), "sh: exit status 143"},
		{Spec{Exec: &Exec{Argv: []string{"/nonexistent/probe"}}}, "/nonexistent/probe: fork/exec /nonexistent/probe: no such file or directory"},
		{Spec{Exec: &Exec{Argv: []string{"no-such-probe-command"}}}, "executable file not found"},
	}
	for _, tt := range tests {
		err := checkOnce(t, tt.spec)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%v: got %v, want %q", tt.spec, err, tt.want)
		}
	}
}

func TestExecEnvAndDir(t *testing.T) {
	dir := t.TempDir()
	spec := Spec{Exec: &Exec{
		Argv: []string{"sh", "-c", `test "$PROBE_VAR" = "a b" && test "$(pwd -P)" = "$WANT_DIR" && test -z "$HOME"`},
		Env:  []string{"PROBE_VAR=a b", "WANT_DIR=" + mustEvalSymlinks(t, dir), "PATH=" + os.Getenv("PATH")},
		Dir:  dir,
	}}
	if err := checkOnce(t, spec); err != nil {
		t.Fatal(err)
	}
	spec.Exec.Env[0] = "PROBE_VAR=other"
	if err := checkOnce(t, spec); err == nil {
		t.Fatal("passed with the wrong environment")
	}
}

func mustEvalSymlinks(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pidsIn reads the pids a script wrote to path, one per line.
func pidsIn(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// dead reports whether pid is gone or a zombie.
func dead(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pids")
	// The shell and its background child both wait for a minute.
	spec := shSpec(`sleep 60 & echo $! > ` + pidfile + `; echo $$ >> ` + pidfile + `; wait`)
	spec.Timeout = 500 * time.Millisecond
	start := time.Now()
	err := checkOnce(t, spec)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "after 500ms: sh killed") {
		t.Fatalf("got %v, want a timeout", err)
	}
	if d := time.Since(start); d > wait {
		t.Fatalf("took %v", d)
	}
	pids := pidsIn(t, pidfile)
	if len(pids) != 2 {
		t.Fatalf("pids %v, want the child's and the shell's", pids)
	}
	for _, pid := range pids {
		eventually(t, "pid "+strconv.Itoa(pid)+" dies", func() bool { return dead(pid) })
	}
}

func TestExecLeavesNoBackgroundChild(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pids")
	if err := checkOnce(t, shSpec(`sleep 60 & echo $! > `+pidfile)); err != nil {
		t.Fatal(err)
	}
	pid := pidsIn(t, pidfile)[0]
	eventually(t, "the background sleep dies", func() bool { return dead(pid) })
}

func TestExecThroughScheduler(t *testing.T) {
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{}, clk)
	defer s.Close()
	dir := t.TempDir()
	flag := filepath.Join(dir, "ready")
	// Passes while the file exists.
	h, err := s.Add(Spec{Exec: &Exec{Argv: []string{"sh", "-c", "test -e " + flag + " || exit 1"}},
		Interval: time.Second, Timeout: wait, FailureThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := next(t, s)
	if r.Handle != h || r.Passed || r.Status != StatusUnknown || r.Err == nil || r.Err.Error() != "sh: exit status 1" {
		t.Fatalf("got %+v", r)
	}
	clk.Advance(time.Second)
	if r := next(t, s); r.Passed || r.Status != StatusFailing || !r.Changed {
		t.Fatalf("got %+v", r)
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if r := next(t, s); !r.Passed || r.Status != StatusPassing || !r.Changed {
		t.Fatalf("got %+v", r)
	}
}

func TestExecUsesTheRunner(t *testing.T) {
	var mu sync.Mutex
	var calls [][]string
	runner := func(ctx context.Context, argv, env []string, dir string) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, append(append(append([]string{}, argv...), env...), dir))
		if _, ok := ctx.Deadline(); !ok {
			return -1, errors.New("no deadline")
		}
		return 3, nil
	}
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{Runner: runner}, clk)
	defer s.Close()
	if _, err := s.Add(Spec{Exec: &Exec{Argv: []string{"check", "-q"}, Env: []string{"A=1"}, Dir: "/srv"}}); err != nil {
		t.Fatal(err)
	}
	r := next(t, s)
	if r.Passed || r.Err == nil || r.Err.Error() != "check: exit status 3" {
		t.Fatalf("got %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || strings.Join(calls[0], " ") != "check -q A=1 /srv" {
		t.Fatalf("calls %q", calls)
	}
}
