//go:build linux

package container

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

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
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETFD, 0); err != nil { // inheritable
		t.Fatal(err)
	}
	leaked := strconv.Itoa(int(w.Fd()))
	list := func(name string) []string {
		path := filepath.Join(t.TempDir(), "fds")
		c := startContainer(t, []Spec{helperSpec(name, "fd-lister", 1, "LIST="+path)}, Options{Output: io.Discard})
		waitReady(t, c)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(b))
	}
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
