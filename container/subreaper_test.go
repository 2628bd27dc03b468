//go:build linux

package container

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/notify"
)

func init() {
	helpers["escapee"] = helperEscapee
	helpers["reaper-controller"] = helperReaperController
	helpers["sleeper"] = func([]string) int {
		if f := os.Getenv("SETSID"); f != "" {
			_, _ = syscall.Setsid()
		}
		if f := os.Getenv("FORK_AND_EXIT"); f != "" {
			// The double fork: start the real sleeper and exit, orphaning it.
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(removeEnv(os.Environ(), "FORK_AND_EXIT"), "PIDFILE="+f)
			if err := cmd.Start(); err != nil {
				return 4
			}
			return 0
		}
		if f := os.Getenv("PIDFILE"); f != "" {
			_ = os.WriteFile(f+".tmp", []byte(strconv.Itoa(os.Getpid())), 0o644)
			_ = os.Rename(f+".tmp", f)
		}
		time.Sleep(time.Hour)
		return 0
	}
}

func removeEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// helperEscapee starts three descendants, writing their pids into DIR: one
// in its process group (grouped), one in a session of its own (setsid),
// and one orphaned at once by a double fork (orphan); then it is ready.
func helperEscapee([]string) int {
	c := notifier()
	dir := os.Getenv("DIR")
	exe, _ := os.Executable()
	start := func(name string, env ...string) {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), append([]string{helperEnv + "=sleeper"}, env...)...)
		if err := cmd.Start(); err != nil {
			os.Exit(4)
		}
		if name != "" {
			// Written here, except for the orphan, which writes its own.
			_ = os.WriteFile(filepath.Join(dir, name), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
		}
	}
	start("grouped")
	start("setsid", "SETSID=1")
	start("", "FORK_AND_EXIT="+filepath.Join(dir, "orphan"))
	for _, f := range []string{"grouped", "setsid", "orphan"} {
		for {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	_ = notify.Ready(c, "")
	return waitStop(c)
}

// helperReaperController runs a Controller with a Subreaper (cgroups off
// when NO_CGROUPS is set) and one escapee worker (in the run's cgroup when
// SHARED_CGROUP is set); it prints
// {"worker":PID,"tracking":"..."} once ready and runs until SIGTERM.
func helperReaperController([]string) int {
	r, err := NewSubreaper(SubreaperOptions{RunID: "test-" + strconv.Itoa(os.Getpid()), NoCgroups: os.Getenv("NO_CGROUPS") != ""})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 5
	}
	s := helperSpec("esc", "escapee", 1, "DIR="+os.Getenv("DIR"))
	s.Restart = false
	s.SharedCgroup = os.Getenv("SHARED_CGROUP") != ""
	c, err := NewController([]Spec{s}, ControllerOptions{Subreaper: r})
	if err != nil {
		return 5
	}
	ctx, stop := signalContext()
	defer stop()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	if err := c.WaitReady(ctx); err != nil {
		return 7
	}
	b, _ := json.Marshal(map[string]any{"worker": c.Children()[0].PID, "tracking": r.Tracking()})
	fmt.Println(string(b))
	err = <-done
	r.Close(5 * time.Second)
	if err != nil {
		return 8
	}
	return 0
}

// gone reports whether pid no longer exists at all (not even a zombie).
func gone(pid int) bool {
	_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	return os.IsNotExist(err)
}

func ppidOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// TestSubreaperLeavesNothing is defect 3 of the process core, with the
// controller as a child subreaper (as vigil run is, and as PID 1 of a
// container would be): when a worker is killed, its descendant in its
// process group, the one in a session of its own and the one orphaned by a
// double fork are all stopped, and none is left as a zombie.
func TestSubreaperLeavesNothing(t *testing.T) {
	for _, mode := range []string{"descent", "cgroup", "shared cgroup"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), helperEnv+"=reaper-controller", "DIR="+dir)
			switch mode {
			case "descent":
				cmd.Env = append(cmd.Env, "NO_CGROUPS=1")
			case "shared cgroup":
				cmd.Env = append(cmd.Env, "SHARED_CGROUP=1")
			}
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				<-exited
			}()
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				t.Fatalf("controller: %v", err)
			}
			var ready struct {
				Worker   int
				Tracking string
			}
			if err := json.Unmarshal([]byte(line), &ready); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if mode != "descent" && !strings.HasPrefix(ready.Tracking, "cgroup ") {
				t.Skipf("no writable cgroup v2 here: %s", ready.Tracking)
			}
			t.Logf("tracking: %s", ready.Tracking)
			if mode != "descent" {
				// The worker runs in a cgroup of its own, under the run's
				// (not in the run's, tracked by descent as a fallback); or,
				// shared, in the run's.
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", ready.Worker))
				if err != nil {
					t.Fatal(err)
				}
				run := "/" + filepath.Base(strings.TrimPrefix(ready.Tracking, "cgroup "))
				if want := run + "/esc.0-"; mode == "cgroup" && !strings.Contains(string(b), want) {
					t.Fatalf("the worker's cgroups:\n%s\nwant one under %s", b, run)
				}
				if want := run + "\n"; mode == "shared cgroup" && !strings.Contains(string(b), want) {
					t.Fatalf("the worker's cgroups:\n%s\nwant %s", b, run)
				}
			}
			pids := map[string]int{}
			for _, name := range []string{"grouped", "setsid", "orphan"} {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				pids[name], _ = strconv.Atoi(string(b))
			}
			if got := ppidOf(t, pids["orphan"]); got != cmd.Process.Pid {
				t.Fatalf("the orphan's parent is %d, want the subreaper %d", got, cmd.Process.Pid)
			}
			for name, pid := range pids {
				if gone(pid) {
					t.Fatalf("%s (%d) gone before its worker", name, pid)
				}
			}
			if err := syscall.Kill(ready.Worker, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for name, pid := range pids {
				for !gone(pid) {
					if time.Now().After(deadline) {
						st, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
						t.Fatalf("%s (%d) still there after its worker was killed: %s", name, pid, st)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				exited <- err
				if err != nil {
					t.Errorf("controller: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("controller did not stop")
			}
		})
	}
}
