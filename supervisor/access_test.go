package supervisor

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// callsAs runs the calls helper as otherUID (in the supplementary groups
// given) and returns its final replies, decoded, one per line sent.
func callsAs(t *testing.T, exe, socket string, groups []uint32, lines ...string) []map[string]any {
	t.Helper()
	cmd := helperCmd(t, "calls", append([]string{socket}, lines...)...)
	cmd.Path, cmd.Args[0] = exe, exe
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID, Groups: groups}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("calls helper: %v\n%s", err, out)
	}
	var replies []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("calls helper said %q", out)
		}
		replies = append(replies, m)
	}
	if len(replies) != len(lines) {
		t.Fatalf("%d replies to %d calls: %s", len(replies), len(lines), out)
	}
	return replies
}

// refusedFor reports whether a reply is a refusal naming the role.
func refusedFor(m map[string]any, role Role) bool {
	e, _ := m["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return m["failed"] == true && e["class"] == "PermissionError" &&
		strings.Contains(msg, fmt.Sprintf("needs the role %q", role)) && strings.Contains(msg, role.key())
}

func TestRoles(t *testing.T) {
	dir, exe := sharedDir(t)
	parent, out := startHelper(t, helperCmd(t, "sigwait"))
	if got := readLine(t, out); got != "ready" {
		t.Fatalf("sigwait said %q", got)
	}
	const readersGID, operatorsGID = 4343, 4444
	srv := &Server{ParentPID: parent.Process.Pid, Access: Access{
		Readers:    &Principals{GIDs: []int{readersGID}},
		Operators:  Principals{GIDs: []int{operatorsGID}},
		Diagnosers: Principals{UIDs: []int{4545}},
	}}
	ts := startServerAt(t, srv, ListenOptions{AllowUIDs: []int{otherUID}}, filepath.Join(dir, "roles.ipc"))
	_, worker := register(t, ts.path, map[string]any{"process_id": 7, "name": "web"})
	ctrl := dial(t, ts.path, workerHandlers())
	if _, err := ctrl.Register(ctxT(t), map[string]any{"role": "controller", "process_id": parent.Process.Pid}); err == nil {
		t.Fatal("a process other than the controller registered as it")
	}
	status := `{"id":2,"do":"status"}`
	restart := `{"id":4,"do":"restart","signal":"HUP"}`
	dump := `{"id":6,"do":"forward","connection_id":"` + worker + `","operation":{"do":"thread_dump"}}`

	// In no role: not even status.
	r := callsAs(t, exe, ts.path, nil, status, restart, dump)
	if !refusedFor(r[0], RoleRead) || !refusedFor(r[1], RoleControl) || !refusedFor(r[2], RoleDiagnostics) {
		t.Errorf("a peer in no role:\n%v", r)
	}
	// A reader reads only.
	r = callsAs(t, exe, ts.path, []uint32{readersGID}, status, restart, dump)
	if r[0]["failed"] == true || !refusedFor(r[1], RoleControl) || !refusedFor(r[2], RoleDiagnostics) {
		t.Errorf("a reader:\n%v", r)
	}
	// An operator reads and controls, but does not diagnose.
	r = callsAs(t, exe, ts.path, []uint32{operatorsGID}, status, restart, dump)
	if r[0]["failed"] == true || r[1]["failed"] == true || !refusedFor(r[2], RoleDiagnostics) {
		t.Errorf("an operator:\n%v", r)
	}
	if got := readLine(t, out); got != "HUP" {
		t.Errorf("the controller got %s, want the operator's HUP (and nothing before it)", got)
	}
	// Root has every role.
	if _, err := dial(t, ts.path, nil).Forward(ctxT(t), worker, map[string]any{"do": "thread_dump"}, nil); err != nil {
		t.Errorf("root's forward: %v", err)
	}

	// Every control and diagnostics call is audited, with the caller's uid
	// and pid, refused or not; reads are not.
	logs := ts.logs.String()
	for _, want := range []string{
		`msg=audit operation=restart role=control allowed=false uid=65534 pid=\d+ signal=HUP`,
		`msg=audit operation=restart role=control allowed=true uid=65534 pid=\d+ signal=HUP`,
		`msg=audit operation=forward role=diagnostics allowed=false uid=65534 pid=\d+ connection_id=` + worker + ` target_pid=7 forwarded=thread_dump`,
		`msg=audit operation=forward role=diagnostics allowed=true uid=0 pid=\d+`,
	} {
		if !regexp.MustCompile(want).MatchString(logs) {
			t.Errorf("no audit line %q in:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "msg=audit operation=status") {
		t.Errorf("a read was audited:\n%s", logs)
	}
}

func TestForwardToControllerRoles(t *testing.T) {
	cases := []struct {
		op   string
		role Role
	}{{"children", RoleRead}, {"logs", RoleRead}, {"restart_children", RoleControl}, {"scale", RoleControl}}
	ctrl := newConnection("c", map[string]any{"role": "controller"})
	worker := newConnection("w", map[string]any{"name": "web"})
	for _, tc := range cases {
		if got := forwardRole(ctrl, tc.op); got != tc.role {
			t.Errorf("forward %s to the controller: role %s, want %s", tc.op, got, tc.role)
		}
		if got := forwardRole(worker, tc.op); got != RoleDiagnostics {
			t.Errorf("forward %s to a worker: role %s, want diagnostics", tc.op, got)
		}
	}
}

func TestAccessAllows(t *testing.T) {
	owner := 1000
	a := Access{Operators: Principals{UIDs: []int{2000}}, Diagnosers: Principals{GIDs: []int{3000}}}
	cases := []struct {
		name string
		peer Credentials
		role Role
		want bool
	}{
		{"root", Credentials{UID: 0}, RoleDiagnostics, true},
		{"the owner", Credentials{UID: owner}, RoleControl, true},
		{"anyone reads when readers is unset", Credentials{UID: 5000}, RoleRead, true},
		{"an unknown peer reads when readers is unset", unknownPeer, RoleRead, true},
		{"an unknown peer does not control", unknownPeer, RoleControl, false},
		{"an operator", Credentials{UID: 2000}, RoleControl, true},
		{"an operator does not diagnose", Credentials{UID: 2000}, RoleDiagnostics, false},
		{"a diagnoser by a supplementary group", Credentials{UID: 5000, GID: 5000, Groups: []int{3000}}, RoleDiagnostics, true},
		{"others do not control", Credentials{UID: 5000}, RoleControl, false},
	}
	for _, tc := range cases {
		if got := a.allows(tc.peer, tc.role, []int{owner}); got != tc.want {
			t.Errorf("%s: allows %s = %v, want %v", tc.name, tc.role, got, tc.want)
		}
	}
	a.Readers = &Principals{}
	if a.allows(Credentials{UID: 5000}, RoleRead, nil) || a.allows(unknownPeer, RoleRead, nil) || !a.allows(Credentials{UID: 2000}, RoleRead, nil) {
		t.Errorf("with readers set, only readers, operators and diagnosers read")
	}
}
