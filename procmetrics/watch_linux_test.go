package procmetrics

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// startSleep starts a sleep child, killed and reaped at the end of the test.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

func TestWatchRealProcess(t *testing.T) {
	fs := DefaultFS()
	self := watch(t, fs, os.Getpid())
	res, err := self.Resident()
	if want, _ := fs.Resident(os.Getpid()); err != nil || res == 0 || res > 2*want || want > 2*res {
		t.Errorf("own resident %d (%v), FS.Resident says %d", res, err, want)
	}
	_, private, err := self.Memory()
	// The two readings are moments apart: close, not equal.
	if want, _ := fs.Private(os.Getpid()); err != nil || private == 0 || private > 2*want || want > 2*private {
		t.Errorf("own private %d (%v), FS.Private says %d", private, err, want)
	}

	cmd := startSleep(t)
	pid := cmd.Process.Pid
	w := watch(t, fs, pid)
	if r, err := w.Resident(); err != nil || r == 0 {
		t.Fatalf("child resident %d, %v", r, err)
	}
	if _, p, err := w.Memory(); err != nil || p == 0 {
		t.Fatalf("child private %d, %v", p, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	for i := range 2 {
		if _, err := w.Resident(); !errors.Is(err, ErrNotFound) {
			t.Errorf("reading %d: Resident of an exited process: %v, want ErrNotFound", i, err)
		}
		if _, _, err := w.Memory(); !errors.Is(err, ErrNotFound) {
			t.Errorf("reading %d: Memory of an exited process: %v, want ErrNotFound", i, err)
		}
	}
	if _, err := fs.Watch(pid); !errors.Is(err, ErrNotFound) {
		t.Errorf("Watch of an exited process: %v, want ErrNotFound", err)
	}
}

// TestWatchPidReused makes a new process take the pid of an exited one (by
// setting ns_last_pid, which needs root) and checks that the kept files of
// the old one do not read the new one.
func TestWatchPidReused(t *testing.T) {
	const lastPid = "/proc/sys/kernel/ns_last_pid"
	fs := DefaultFS()
	for attempt := range 10 {
		old := startSleep(t)
		pid := old.Process.Pid
		w := watch(t, fs, pid)
		if _, err := w.Resident(); err != nil {
			t.Fatal(err)
		}
		old.Process.Kill()
		old.Wait()
		if err := os.WriteFile(lastPid, []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Skipf("cannot choose the next pid: %v", err)
		}
		cmd := startSleep(t)
		if cmd.Process.Pid != pid {
			t.Logf("attempt %d: new process got pid %d, not %d", attempt, cmd.Process.Pid, pid)
			continue
		}
		if _, err := fs.Resident(pid); err != nil {
			t.Fatalf("new process %d by path: %v", pid, err)
		}
		if _, err := w.Resident(); !errors.Is(err, ErrNotFound) {
			t.Errorf("kept statm of the old process %d: %v, want ErrNotFound", pid, err)
		}
		if _, _, err := w.Memory(); !errors.Is(err, ErrNotFound) {
			t.Errorf("kept smaps_rollup of the old process %d: %v, want ErrNotFound", pid, err)
		}
		return
	}
	t.Skip("no new process took the old pid in 10 attempts")
}
