//go:build linux

package container

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/notify"
)

func init() {
	// fd-lister writes the descriptors it has into $LIST, then is ready.
	helpers["fd-lister"] = func([]string) int {
		c := notifier()
		entries, _ := os.ReadDir("/proc/self/fd")
		var fds []string
		for _, e := range entries {
			fds = append(fds, e.Name())
		}
		_ = os.WriteFile(os.Getenv("LIST"), []byte(strings.Join(fds, " ")), 0o644)
		_ = notify.Ready(c, "")
		return waitStop(c)
	}
}

// TestInheritNothing: a descriptor this process holds without
// close-on-exec reaches no child once InheritNothing was called.
func TestInheritNothing(t *testing.T) {
	leaked := inheritableFD(t)
	// Spawners that fork from the process's table: with tables of their
	// own, nothing of it reaches a child anyway (TestChildGetsOnlyItsOwn).
	list := func(name string) []string { return listChildFDs(t, name, Options{Output: io.Discard, sharedFDs: true}) }
	if fds := list("before"); !contains(fds, leaked) {
		t.Fatalf("the inheritable fd %s did not reach the child (%v): the test shows nothing", leaked, fds)
	}
	if err := InheritNothing(); err != nil {
		t.Fatal(err)
	}
	if fds := list("after"); contains(fds, leaked) {
		t.Errorf("fd %s reached the child after InheritNothing: %v", leaked, fds)
	}
}

// inheritableFD opens a pipe whose write end is open across exec (no
// close-on-exec), for the test's life, and returns that end's number.
func inheritableFD(t *testing.T) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETFD, 0); err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(int(w.Fd()))
}

// listChildFDs starts an fd-lister child and returns the descriptors it
// had.
func listChildFDs(t *testing.T, name string, opts Options) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fds")
	c := startContainer(t, []Spec{helperSpec(name, "fd-lister", 1, "LIST="+path)}, opts)
	waitReady(t, c)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// TestChildGetsOnlyItsOwn: a child gets its own descriptors (0 to 3) and
// nothing of the controller's, even a descriptor the controller holds
// without close-on-exec: a spawner thread forks from a table of its own,
// not the process's (whose every pipe and pidfd a fork would copy and
// an exec close again, one by one, for every child).
func TestChildGetsOnlyItsOwn(t *testing.T) {
	if !newSpawnThreadWorks(t) {
		t.Skip("no table of its own for a spawner thread here (unshare or pidfd_getfd refused)")
	}
	leaked := inheritableFD(t)
	if fds := listChildFDs(t, "shared", Options{Output: io.Discard, sharedFDs: true}); !contains(fds, leaked) {
		t.Fatalf("forking from the process's table, the inheritable fd %s did not reach the child (%v): the test shows nothing", leaked, fds)
	}
	fds := listChildFDs(t, "own", Options{Output: io.Discard})
	if contains(fds, leaked) {
		t.Errorf("the controller's inheritable fd %s reached the child: %v", leaked, fds)
	}
	for _, want := range []string{"0", "1", "2", "3"} {
		if !contains(fds, want) {
			t.Errorf("the child had %v: no %s", fds, want)
		}
	}
}

// TestSpawnerHoldsNoCopies: a spawner thread's own table keeps nothing of
// the process's: the write end of a pipe open when the container
// started, once closed here, is closed for good (its reader sees the end
// while the container runs).
func TestSpawnerHoldsNoCopies(t *testing.T) {
	if !newSpawnThreadWorks(t) {
		t.Skip("no table of its own for a spawner thread here")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := startContainer(t, []Spec{helperSpec("copies", "ready", 2)}, Options{Output: io.Discard})
	waitReady(t, c) // the spawner threads have their tables by now
	w.Close()
	if err := r.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read from a pipe whose only write end was closed: %v, want EOF (a spawner thread holds a copy)", err)
	}
}

// newSpawnThreadWorks reports whether a spawner thread gets a table of
// its own here, trying it on a thread of its own (not the main thread).
func newSpawnThreadWorks(t *testing.T) bool {
	t.Helper()
	got := make(chan bool)
	var try func()
	try = func() {
		// Never unlocked (but on the main thread): the thread, with its
		// table, exits with the goroutine.
		runtime.LockOSThread()
		if !isMainThread() {
			got <- newSpawnThread(false).private
			return
		}
		// Another goroutine cannot run on this thread while this one
		// holds it; it answers.
		done := make(chan struct{})
		go func() { try(); close(done) }()
		<-done
		runtime.UnlockOSThread()
	}
	go try()
	return <-got
}
