package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vigild/vigil/rpc"
)

// inNamespace starts the test binary as a helper in a new pid namespace
// (and mount namespace, with its own /proc), as `unshare --pid --fork
// --mount-proc` makes one: the helper is its pid 1. It skips the test when
// the kernel (or a lack of privilege) forbids new namespaces. The helper
// and all the namespace's processes are killed when the test ends.
func inNamespace(t *testing.T, name string, args ...string) *bufio.Reader {
	t.Helper()
	if out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot make a pid namespace here (unshare --pid --fork --mount-proc: %v: %s)", err, strings.TrimSpace(string(out)))
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", exe}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+name, "GORACE=atexit_sleep_ms=0")
	_, out := startHelper(t, cmd)
	return out
}

// Defect 1: a peer outside the supervisor's pid namespace, for which the
// kernel gives pid 0, passed the controller check (pid 0 was exempt).
func TestPeerOutsidePidNamespace(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "ns.ipc")
	// The supervisor is pid 1 of its namespace; this test process, outside
	// it, has no pid there.
	out := inNamespace(t, "serve", socket, "0")
	if got := readLine(t, out); got != "ready" {
		t.Fatalf("supervisor in a namespace: %q", got)
	}
	ctx := ctxT(t)
	impostor := dial(t, socket, rpc.Handlers{"children": func(ctx context.Context, call *rpc.Call) error {
		return call.Finish(map[string]any{"children": []map[string]any{{"service": "fake", "pid": 1}}})
	}})
	_, err := impostor.Register(ctx, map[string]any{"role": "controller", "process_id": os.Getpid()})
	var re *rpc.RemoteError
	if !errors.As(err, &re) || re.Class != "PermissionError" || !strings.Contains(re.Message, "outside the supervisor's pid namespace") {
		t.Errorf("a peer outside the pid namespace registering as the controller: %v", err)
	}
	// It may register as a worker, but unverified.
	w := dial(t, socket, nil)
	if _, err := w.Register(ctx, map[string]any{"process_id": 1, "name": "outsider"}); err != nil {
		t.Fatal(err)
	}
	st, err := dial(t, socket, nil).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Part("children") != nil {
		t.Errorf("the impostor's children are in the status: %s", st.Part("children"))
	}
	if len(st.Connections) != 1 {
		t.Fatalf("connections: %+v", st.Connections)
	}
	if s, _ := st.Connections[0].StateMap(); s["verified"] != false {
		t.Errorf("a registration from outside the pid namespace: verified %v, want false", s["verified"])
	}
}

// Issue 9: a controller that runs as pid 1 (a container's init) is
// signalled when it is named explicitly; only an implicit parent of pid 1
// (a hand-started supervisor whose parent went) is refused.
func TestRestartSignalsAControllerThatIsPID1(t *testing.T) {
	dir := t.TempDir()
	explicit, implicit := filepath.Join(dir, "explicit.ipc"), filepath.Join(dir, "implicit.ipc")
	out := inNamespace(t, "init", explicit+":1", implicit+":0")
	if got := readLine(t, out); got != "ready 1" {
		t.Fatalf("init said %q, want ready as pid 1", got)
	}
	ctx := ctxT(t)
	if err := dial(t, explicit, nil).Restart(ctx, "HUP"); err != nil {
		t.Fatalf("restart with --controller-pid 1: %v", err)
	}
	if got := readLine(t, out); got != "HUP" {
		t.Fatalf("pid 1 got %q, want HUP", got)
	}
	err := dial(t, implicit, nil).Restart(ctx, "HUP")
	var re *rpc.RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "no parent process to signal (parent pid 1)") {
		t.Errorf("restart with an implicit parent of pid 1: %v", err)
	}
	if err := dial(t, explicit, nil).Restart(ctx, "USR1"); err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, out); got != "USR1" {
		t.Errorf("pid 1 got %q after the refused restart, want USR1 (and nothing before)", got)
	}
}

// A peer whose pid is known may register only itself or a descendant,
// unless it is root.
func TestRegisterAnotherProcess(t *testing.T) {
	dir, exe := sharedDir(t)
	ts := startServerAt(t, &Server{}, ListenOptions{AllowUIDs: []int{otherUID}}, filepath.Join(dir, "verify.ipc"))
	r := callsAs(t, exe, ts.path, nil,
		fmt.Sprintf(`{"id":2,"do":"register","state":{"process_id":%d}}`, os.Getpid()),
		`{"id":4,"do":"register","state":{"process_id":"$SELF"}}`,
		`{"id":6,"do":"register","state":{"process_id":"$CHILD"}}`,
	)
	e, _ := r[0]["error"].(map[string]any)
	if r[0]["failed"] != true || e["class"] != "PermissionError" || !strings.Contains(fmt.Sprint(e["message"]), "neither the registering process") {
		t.Errorf("uid %d naming root's process: %v", otherUID, r[0])
	}
	if r[1]["failed"] == true || r[2]["failed"] == true {
		t.Errorf("naming itself, and its child: %v, %v", r[1], r[2])
	}
	for _, c := range ts.Connections() {
		if !c.Verified() {
			t.Errorf("registration %v is not verified", c.State())
		}
	}
}

func TestIsDescendant(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the sleep too
		cmd.Wait()
	})
	sh := cmd.Process.Pid
	var grandchild int
	waitFor(t, "the grandchild", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", sh, sh))
		if err == nil {
			fmt.Sscan(string(b), &grandchild)
		}
		return grandchild > 0
	})
	self := os.Getpid()
	cases := []struct {
		pid, ancestor int
		want          bool
	}{
		{sh, self, true}, {grandchild, self, true}, {grandchild, sh, true},
		{self, sh, false}, {1, self, false}, {self, self, false}, {1 << 30, self, false},
	}
	for _, tc := range cases {
		if got := isDescendant(tc.pid, tc.ancestor); got != tc.want {
			t.Errorf("isDescendant(%d, %d) = %v, want %v", tc.pid, tc.ancestor, got, tc.want)
		}
	}
}
