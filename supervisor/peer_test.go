package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vigild/vigil/internal/testutil"
)

// otherUID is the unprivileged user the refusal tests run their client as.
const otherUID = testutil.OtherUID

// sharedDir returns a directory that another uid can enter, holding a copy
// of the test binary that it can execute.
func sharedDir(t *testing.T) (dir, exe string) { return testutil.SharedExecutable(t) }

// dialAs runs the dial helper as otherUID, in the supplementary groups
// given, and returns what it printed.
func dialAs(t *testing.T, exe, socket string, groups ...uint32) string {
	t.Helper()
	cmd := helperCmd(t, "dial", socket)
	cmd.Path, cmd.Args[0] = exe, exe
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID, Groups: groups, NoSetGroups: false}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dial helper: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestPeerCredentials(t *testing.T) {
	dir, exe := sharedDir(t)

	t.Run("file permissions refuse other users", func(t *testing.T) {
		path := filepath.Join(dir, "private.ipc")
		ts := serveAt(t, path, ListenOptions{})
		out := dialAs(t, exe, ts.path)
		if !strings.Contains(out, "dial error") || !strings.Contains(out, "permission denied") || !strings.Contains(out, "uid 65534") {
			t.Errorf("client as uid %d: %q", otherUID, out)
		}
	})

	t.Run("peer credentials refuse a uid not allowed", func(t *testing.T) {
		path := filepath.Join(dir, "open.ipc")
		// Another uid is allowed, so the file is open to all (0666) and the
		// peer credentials are the gate.
		ts := serveAt(t, path, ListenOptions{AllowUIDs: []int{4242}, AllowGIDs: []int{4343}})
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o666 {
			t.Fatalf("socket with allowed uids: %v %v, want mode 0666", fi.Mode(), err)
		}
		out := dialAs(t, exe, ts.path, 4444)
		if !strings.Contains(out, "register error") || !strings.Contains(out, "connection closed") {
			t.Errorf("refused client: %q", out)
		}
		logs := ts.logs.String()
		if !strings.Contains(logs, "refused connection") || !strings.Contains(logs, "uid=65534") || !strings.Contains(logs, "pid=") {
			t.Errorf("refusal not logged with pid and uid:\n%s", logs)
		}
		if n := len(ts.Connections()); n != 0 {
			t.Errorf("refused peer registered: %d connections", n)
		}
	})

	t.Run("an allowed uid connects", func(t *testing.T) {
		path := filepath.Join(dir, "allowed.ipc")
		ts := serveAt(t, path, ListenOptions{AllowUIDs: []int{otherUID}})
		if out := dialAs(t, exe, ts.path); !strings.HasPrefix(out, "registered ") {
			t.Errorf("allowed client: %q", out)
		}
	})

	t.Run("an allowed supplementary group connects", func(t *testing.T) {
		path := filepath.Join(dir, "allowed-gid.ipc")
		ts := serveAt(t, path, ListenOptions{AllowGIDs: []int{4343}})
		if out := dialAs(t, exe, ts.path, 4343); !strings.HasPrefix(out, "registered ") {
			t.Errorf("client in an allowed supplementary group: %q", out)
		}
	})

	t.Run("a socket group lets its members in", func(t *testing.T) {
		path := filepath.Join(dir, "group.ipc")
		gid := otherUID
		ts := serveAt(t, path, ListenOptions{Group: &gid})
		if out := dialAs(t, exe, ts.path); !strings.HasPrefix(out, "registered ") {
			t.Errorf("group member: %q", out)
		}
		// A member through a supplementary group passes the file's mode and
		// the credential check alike.
		gid2 := 4545
		path2 := filepath.Join(dir, "group2.ipc")
		ts2 := serveAt(t, path2, ListenOptions{Group: &gid2})
		if out := dialAs(t, exe, ts2.path, 4545); !strings.HasPrefix(out, "registered ") {
			t.Errorf("supplementary group member: %q", out)
		}
		if out := dialAs(t, exe, ts2.path); !strings.Contains(out, "permission denied") {
			t.Errorf("non-member: %q", out)
		}
	})
}

// serveAt is startServer at a given path.
func serveAt(t *testing.T, path string, opts ListenOptions) *testServer {
	t.Helper()
	ts := startServerAt(t, &Server{}, opts, path)
	return ts
}
