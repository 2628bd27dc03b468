package testutil

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// OtherUID is the unprivileged user a test runs a helper process as, to
// see what vigil does for (or to) someone who is not root.
const OtherUID = 65534

// SharedExecutable returns a directory that OtherUID can enter, holding a
// copy of the test binary that it can execute (a test binary's own
// directory is root's alone); both are removed when the test ends. It
// skips the test unless it runs as root, which it needs to start a
// process as OtherUID.
func SharedExecutable(t testing.TB) (dir, exe string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to run a helper as another uid")
	}
	dir, err := os.MkdirTemp("", "vigil-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	exe = filepath.Join(dir, "helper.test")
	dst, err := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, exe
}
