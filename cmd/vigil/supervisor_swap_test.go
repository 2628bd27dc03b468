package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/supervisor"
)

// statusLoop calls status on socket until stop is closed, counting the
// calls that failed.
func statusLoop(t *testing.T, socket string, stop chan struct{}) (wait func() (ok, failed int64)) {
	var okN, failN atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := supervisor.Dial(ctx, socket)
			if err == nil {
				_, err = callStatus(ctx, c)
				c.Close()
			}
			cancel()
			if err != nil {
				failN.Add(1)
				t.Logf("status failed: %v", err)
			} else {
				okN.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	return func() (int64, int64) { wg.Wait(); return okN.Load(), failN.Load() }
}

// TestRunReplacesTheSupervisor is defect 4 of the process core: the
// supervisor can be changed while running. vigil restart supervisor, and a
// reload that adds allow_uids and a process monitor, each start a new
// supervisor beside the old one on the same socket; nothing is refused
// meanwhile, the workers and the controller reconnect, and the change is
// in force.
func TestRunReplacesTheSupervisor(t *testing.T) {
	r := startRun(t, workerConfig(t, 2, ""))
	tr := r.waitTree("2 ready workers", allUp(2))
	sup := tr.pids(SupervisorService, "")

	stop := make(chan struct{})
	wait := statusLoop(t, r.socket, stop)
	stdout, stderr, code := opRun(t, nil, "restart", "--socket", r.socket, "supervisor")
	if code != 0 {
		t.Errorf("vigil restart supervisor: exit %d: %s%s", code, stdout, stderr)
	}
	tr = r.waitTree("a new supervisor, the workers registered again", func(tr tree) bool {
		s := tr.pids(SupervisorService, "ready")
		return allUp(2)(tr) && len(s) == 1 && s[0] != sup[0]
	})

	// A reload that changes the supervisor's settings.
	sup = tr.pids(SupervisorService, "")
	cfg := strings.Replace(workerConfig(t, 2, ""), "[services.web]", "[supervisor]\nallow_uids = [65534]\n\n[supervisor.monitors.process]\ninterval = \"1s\"\n\n[services.web]", 1)
	if err := os.WriteFile(r.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	web := tr.pids("web", "")
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the reload done", func() bool { return strings.Contains(r.out.String(), "reload done") })
	tr = r.waitTree("a new supervisor after the reload", func(tr tree) bool {
		s := tr.pids(SupervisorService, "ready")
		return allUp(2)(tr) && len(s) == 1 && s[0] != sup[0]
	})
	close(stop)
	ok, failed := wait()
	if failed > 0 || ok < 10 {
		t.Errorf("status calls during the swaps: %d answered, %d failed", ok, failed)
	}
	if got := tr.pids("web", ""); !equalInts(got, web) {
		t.Errorf("the workers were restarted by a change of the supervisor: %v, then %v", web, got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st := r.rawStatus(ctx); st.Part("process_monitor") == nil {
		t.Errorf("the process monitor added by the reload is not in status")
	}
	if fi, err := os.Stat(r.socket); err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("the socket's mode after allow_uids was added: %v %v, want 0666", fi.Mode(), err)
	}
	if strings.Contains(r.out.String(), "already listening") {
		t.Errorf("a supervisor was refused the socket:\n%s", r.out.String())
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A supervisor that restarts takes the settings vigil run validated at its
// start or last reload, not what the file says now: an edit not yet
// reloaded (here, one that does not even parse) must not keep it down.
func TestRunSupervisorRestartsWithTheLoadedConfig(t *testing.T) {
	r := startRun(t, workerConfig(t, 1, ""))
	tr := r.waitTree("a ready worker", allUp(1))
	sup := tr.pids(SupervisorService, "")
	if err := os.WriteFile(r.config, []byte("[services.web\ncommand = \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(sup[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.waitTree("a new supervisor, with the worker registered again", func(tr tree) bool {
		s := tr.pids(SupervisorService, "ready")
		return allUp(1)(tr) && len(s) == 1 && s[0] != sup[0]
	})
}

// TestRunFailedSupervisorReloadsKeepNoDocument: a reload that changes the
// supervisor's settings hands the new supervisor a sealed memory file of
// the document. When that supervisor fails to start (here, its metrics
// address is taken), the reload fails and the old supervisor stays; the
// new document was kept open until the run ended, one more for each such
// reload (a deploy retried every minute: one a minute).
func TestRunFailedSupervisorReloadsKeepNoDocument(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	r := startRun(t, workerConfig(t, 1, ""))
	r.waitTree("1 ready worker", allUp(1))
	memfds := func() int {
		n := 0
		entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", r.cmd.Process.Pid))
		for _, e := range entries {
			if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", r.cmd.Process.Pid, e.Name())); err == nil && strings.HasPrefix(link, "/memfd:") {
				n++
			}
		}
		return n
	}
	before := memfds()
	cfg := workerConfig(t, 1, "") + fmt.Sprintf("\n[metrics]\nlisten = %q\n", taken.Addr().String())
	if err := os.WriteFile(r.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, _, code := opRun(t, nil, "reload", "--socket", r.socket); code == 0 {
			t.Fatalf("reload %d with the metrics address taken succeeded", i+1)
		}
	}
	if after := memfds(); after != before {
		t.Errorf("vigil run holds %d memory files after 3 failed reloads, %d before", after, before)
	}
	r.waitTree("the old supervisor and the worker", allUp(1))
}

// TestRunSupervisorRestartKeepsTheView: after `vigil restart supervisor`,
// the new supervisor had no controller registered (status: no workers,
// metrics: no fleet) until the old one's drain ended, 5 s later: the
// controller's connection never looked idle to it. It is back at once.
func TestRunSupervisorRestartKeepsTheView(t *testing.T) {
	r := startRun(t, workerConfig(t, 2, ""))
	r.waitTree("2 ready workers", allUp(2))
	if stdout, stderr, code := opRun(t, nil, "restart", "--socket", r.socket, "supervisor"); code != 0 {
		t.Fatalf("vigil restart supervisor: exit %d: %s%s", code, stdout, stderr)
	}
	start := time.Now()
	r.waitTree("the workers in the new supervisor's status", func(tr tree) bool { return len(tr.pids("web", "ready")) == 2 })
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the new supervisor saw the controller %v after the restart", took.Round(time.Millisecond))
	}
}
