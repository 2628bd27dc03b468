//go:build linux

package container

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func testRunID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestNewCgroupsRemovesKilledRuns: a run whose controller and guard were
// both killed leaves its cgroup (and its children's) behind, empty, and
// nothing removed them. A new run removes those beside its own that are
// empty, old, its user's, held open by no process (a live controller holds
// its run's) and named by none (a guard stopping its run); it keeps the
// others.
func TestNewCgroupsRemovesKilledRuns(t *testing.T) {
	probe, err := newCgroups(testRunID())
	if err != nil {
		t.Skipf("no writable cgroup v2 here: %v", err)
	}
	parent := filepath.Dir(probe.base)
	probe.close()
	old := time.Now().Add(-time.Hour)
	made := func(aged bool, children ...string) string {
		t.Helper()
		dir := filepath.Join(parent, "vigil-"+testRunID())
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeCgroupTree(dir, time.Now().Add(5*time.Second)) })
		for _, c := range children {
			if err := os.Mkdir(filepath.Join(dir, c), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if aged {
			if err := os.Chtimes(dir, old, old); err != nil {
				t.Skipf("cannot age a cgroup here: %v", err)
			}
		}
		return dir
	}
	left := made(true, "web-1", "web-2")
	held := made(true, "web-3")
	fd, err := unix.Open(held, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	named := made(true)
	guard := exec.Command("sh", "-c", "sleep 60", named) // "$0" names it
	if err := guard.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = guard.Process.Kill()
		_ = guard.Wait()
	}()
	young := made(false)
	// Another user's: its controller may be a process this one cannot see
	// the descriptors of.
	others := made(true)
	if err := os.Lchown(others, 65534, 65534); err != nil {
		t.Skipf("cannot give a cgroup to another user here: %v", err)
	}
	if err := os.Chtimes(others, old, old); err != nil {
		t.Fatal(err)
	}

	g, err := newCgroups(testRunID())
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if _, err := os.Stat(left); err == nil {
		t.Errorf("the killed run's cgroup %s is still there", left)
	}
	if !slices.Equal(g.swept, []string{left}) {
		t.Errorf("swept %v, want [%s]", g.swept, left)
	}
	for _, dir := range []string{held, named, young, others} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s was removed: %v", dir, err)
		}
	}
}
