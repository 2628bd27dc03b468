package runstate

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestAcquireWriteRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "supervisor.ipc.lock")
	l, prev, err := Acquire(path)
	if err != nil || prev != nil {
		t.Fatalf("Acquire = %v, %+v", err, prev)
	}
	rec := Record{PID: os.Getpid(), RunID: "r1", Socket: "s", Started: time.Unix(1, 0).UTC()}
	if err := l.Write(rec); err != nil {
		t.Fatal(err)
	}
	// Held: a second Acquire fails and names the holder.
	_, holder, err := Acquire(path)
	if !errors.Is(err, ErrRunning) || holder == nil || holder.RunID != "r1" || holder.PID != os.Getpid() {
		t.Fatalf("second Acquire = %v, %+v", err, holder)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("lock file left after Release: %v", err)
	}
	l2, prev, err := Acquire(path)
	if err != nil || prev != nil {
		t.Fatalf("after Release: Acquire = %v, %+v", err, prev)
	}
	l2.Release()
}

// TestKilledHolder: a holder killed without releasing leaves its record,
// and the lock is free.
func TestKilledHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	l, _, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(Record{PID: 4242, RunID: "dead"}); err != nil {
		t.Fatal(err)
	}
	// A real other process holds it now: hand it over through flock(1).
	l.f.Close() // as if this process had died: the lock is released, the record stays
	// One process holding the lock (sh execs into sleep, keeping fd 9).
	cmd := exec.Command("sh", "-c", `exec 9<>"$0"; flock -n 9 || exit 9; exec sleep 5`, path)
	if err := cmd.Start(); err != nil {
		t.Skipf("no flock(1): %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	_, holder, err := Acquire(path)
	if !errors.Is(err, ErrRunning) || holder == nil || holder.RunID != "dead" {
		t.Errorf("while another process holds it: %v, %+v", err, holder)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l2, prev, err := Acquire(path)
	if err != nil || prev == nil || prev.RunID != "dead" || prev.PID != 4242 {
		t.Fatalf("after the holder was killed: Acquire = %v, %+v; want the dead run's record", err, prev)
	}
	l2.Release()
}
