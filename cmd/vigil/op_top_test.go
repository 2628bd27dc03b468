package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tmuxServer is a tmux server of the test's own (its own socket), killed
// when the test ends.
type tmuxServer struct {
	t      *testing.T
	socket string
}

func startTmux(t *testing.T, width, height int, command string) *tmuxServer {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed: vigil top is tested in a real terminal under tmux")
	}
	s := &tmuxServer{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock")}
	s.run("new-session", "-d", "-s", "top", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height), command)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", s.socket, "kill-server").Run() })
	return s
}

func (s *tmuxServer) run(args ...string) string {
	s.t.Helper()
	cmd := exec.Command("tmux", append([]string{"-S", s.socket}, args...)...)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen is what the pane shows now.
func (s *tmuxServer) screen() string { return s.run("capture-pane", "-p", "-t", "top") }

// keys types keys into the pane.
func (s *tmuxServer) keys(keys ...string) {
	s.run(append([]string{"send-keys", "-t", "top"}, keys...)...)
}

// waitScreen waits until cond holds for the screen.
func (s *tmuxServer) waitScreen(what string, cond func(string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		scr := s.screen()
		if cond(scr) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s; the screen:\n%s", what, scr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// screenRow is the line of the screen that starts with name.
func screenRow(scr, name string) string {
	for _, l := range strings.Split(scr, "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return ""
}

// TestTopInTmux: vigil top in a real terminal (tmux): a row for every
// worker, sparklines drawn as the process monitor's figures come, a
// restart done from inside it (select, r, y), and q quits.
func TestTopInTmux(t *testing.T) {
	r := startRun(t, workerConfig(t, 3, `
[supervisor.monitors.process]
interval = "1s"
`))
	first := r.waitTree("three workers", allUp(3))
	tm := startTmux(t, 160, 30, fmt.Sprintf("%s top --socket %s", vigilBin, r.socket))

	names := []string{"supervisor.0", "web.0", "web.1", "web.2"}
	sparks := "▁▂▃▄▅▆▇█"
	scr := tm.waitScreen("a row with sparklines for every worker", func(scr string) bool {
		for _, n := range names {
			row := screenRow(scr, n)
			// Two sparklines (CPU, memory) of two samples at least each.
			if row == "" || strings.Count(strings.Map(func(r rune) rune {
				if strings.ContainsRune(sparks, r) {
					return 'x'
				}
				return ' '
			}, row), "x") < 4 {
				return false
			}
		}
		return strings.Contains(scr, "4 workers, 4 ready")
	})
	for _, pid := range first.pids("web", "ready") {
		if !strings.Contains(scr, strconv.Itoa(pid)) {
			t.Errorf("the screen lacks pid %d:\n%s", pid, scr)
		}
	}

	// Sorted by name: supervisor.0, web.0, web.1. Select web.1, restart it.
	var old int
	for _, c := range first.children {
		if c.Service == "web" && c.Instance == 1 {
			old = c.PID
		}
	}
	tm.keys("Down", "Down", "r")
	tm.waitScreen("the restart's prompt", func(scr string) bool { return strings.Contains(scr, "restart web.1? ") })
	tm.keys("y")
	tm.waitScreen("web.1 restarted", func(scr string) bool {
		return strings.Contains(scr, fmt.Sprintf("restarted web.1: 1 worker, one at a time; web.1: pid %d -> ", old))
	})
	tr := r.waitTree("web.1 replaced", func(tr tree) bool {
		for _, c := range tr.children {
			if c.Service == "web" && c.Instance == 1 && c.State == "ready" && c.PID != old {
				return true
			}
		}
		return false
	})
	var now int
	for _, c := range tr.children {
		if c.Service == "web" && c.Instance == 1 && c.State == "ready" {
			now = c.PID
		}
	}
	tm.waitScreen("web.1's new pid and restart count on its row", func(scr string) bool {
		row := screenRow(scr, "web.1")
		return strings.Contains(row, strconv.Itoa(now)) && strings.Contains(row, "ready")
	})

	// q quits: the pane's command ends, and with it the session.
	tm.keys("q")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := exec.Command("tmux", "-S", tm.socket, "has-session", "-t", "top").Run(); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vigil top did not quit on q; the screen:\n%s", tm.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTopNeedsATerminal: in a pipe, vigil top refuses and points to
// vigil status --watch.
func TestTopNeedsATerminal(t *testing.T) {
	_, errOut, code := opRun(t, nil, "top", "--socket", "/nonexistent.ipc")
	if code != exitUsage || !strings.Contains(errOut, "vigil status --watch") {
		t.Errorf("vigil top in a pipe: exit %d, %s", code, errOut)
	}
}
