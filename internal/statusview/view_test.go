package statusview

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// replies builds a status from its replies' JSON, one message each: the
// intermediate ones, then the final one.
func replies(t *testing.T, msgs ...string) *supervisor.Status {
	t.Helper()
	st := &supervisor.Status{}
	for i, s := range msgs {
		m, err := rpc.Parse([]byte(s))
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if i == len(msgs)-1 {
			st.Final = m
		} else {
			st.Parts = append(st.Parts, m)
		}
	}
	return st
}

// fixture is a recorded status: a controller, web.0-2, jobs.0, an unnamed
// connection, both monitors, and a monitor that failed.
func fixture(t *testing.T) *supervisor.Status {
	t.Helper()
	b, err := os.ReadFile("testdata/status_fixture.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return replies(t, strings.Split(strings.TrimSpace(string(b)), "\n")...)
}

// row is what a test checks of a Worker.
type row struct {
	name, conn, state, lastExit string
	pid, restarts               int
	uptime, cpu, priv, res      float64
}

func rowOf(w *Worker) row {
	return row{w.Name(), ShortID(w.ConnID), w.State, w.LastExit, w.PID, w.Restarts, w.Uptime, w.CPU, w.Private, w.Resident}
}

const mib = 1 << 20

func TestNewJoinsFixture(t *testing.T) {
	v := New(fixture(t))
	var got []row
	for _, w := range v.Workers {
		got = append(got, rowOf(w))
	}
	want := []row{
		// Children joined with their connections by pid; the memory
		// monitor's figures win over the process monitor's.
		{"jobs.0", "cccc1111", "ready", "", 201, 0, 200000, 0, 4 * mib, 8 * mib},
		{"web.0", "aaaa1111", "ready", "", 101, 0, 3600.5, 1.5, 10 * mib, 30 * mib},
		{"web.1", "bbbb1111", "unhealthy", "exit status 1", 102, 3, 70, 97.25, 42991616, 54525952},
		{"web.2", "", "backing off", "signal: killed", 0, 5, -1, -1, -1, -1},
		// A connection no child claims, sorted last for having no name.
		{"(unnamed)", "dddd1111", "connected", "", 301, -1, -1, -1, -1, -1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows:\n got %+v\nwant %+v", got, want)
	}
	if v.Controller == nil || v.Controller.PID != 100 || !v.Controller.Controller || v.Controller.Name() != "controller" {
		t.Errorf("controller: %+v", v.Controller)
	}
	if len(v.Connections) != 5 || !v.HasChildren || len(v.Children) != 4 {
		t.Errorf("%d connections, children %v/%d; want 5, true/4", len(v.Connections), v.HasChildren, len(v.Children))
	}
	var services []string
	for _, s := range v.Services {
		stats := "-"
		if s.Stats != nil {
			stats = fmt.Sprintf("%d/%d/%d", s.Stats.Spawns, s.Stats.Restarts, s.Stats.Failures)
		}
		services = append(services, fmt.Sprintf("%s:%d/%d cpu=%g priv=%g res=%g restarts=%d stats=%s",
			s.Name, s.Workers, s.Ready, s.CPU, s.Private, s.Resident, s.Restarts, stats))
	}
	wantServices := []string{
		"jobs:1/1 cpu=0 priv=4.194304e+06 res=8.388608e+06 restarts=0 stats=1/0/0",
		fmt.Sprintf("web:3/1 cpu=98.75 priv=%g res=%g restarts=8 stats=12/8/8", float64(10*mib+42991616), float64(30*mib+54525952)),
		":1/0 cpu=-1 priv=-1 res=-1 restarts=0 stats=-",
	}
	if !reflect.DeepEqual(services, wantServices) {
		t.Errorf("services:\n got %q\nwant %q", services, wantServices)
	}
	if want := map[string]int{"maximum_size_limit": 2, "increase_limit": 0}; !reflect.DeepEqual(v.Kills, want) {
		t.Errorf("kills %v, want %v", v.Kills, want)
	}
	if want := []string{"*monitor.Broken failed: reading /proc: permission denied"}; !reflect.DeepEqual(v.Warnings, want) {
		t.Errorf("warnings %q, want %q", v.Warnings, want)
	}
}

func TestNewKillsPerService(t *testing.T) {
	v := New(replies(t,
		`{"memory_monitor":{"processes":{},"kills":{"web":{"maximum_size_limit":2,"increase_limit":1}}}}`,
		`{"finished":true,"connections":[]}`))
	if v.Kills != nil {
		t.Errorf("per-service kills taken as global: %v", v.Kills)
	}
	if len(v.Services) != 1 || v.Services[0].Name != "web" || v.Services[0].Workers != 0 ||
		!reflect.DeepEqual(v.Services[0].Kills, map[string]int{"maximum_size_limit": 2, "increase_limit": 1}) {
		t.Errorf("services: %+v", v.Services)
	}
}

// Without a controller the rows are the connections; parts that cannot be
// read, or that failed, become warnings, and wrong types are skipped.
func TestNewConnectionsOnlyAndBadParts(t *testing.T) {
	v := New(replies(t,
		`{"process_monitor":{"metrics":[1,2]}}`,
		`{"memory_monitor":"nonsense"}`,
		`{"controller":"0123456789abcdef","error":"no children"}`,
		`{"error":{"message":"boom"}}`,
		`{"finished":true,"connections":[`+
			`{"connection_id":"x1","process_id":"12","state":{"name":"svc","instance":1.5,"process_id":12}},`+
			`{"connection_id":"x2","process_id":-3,"state":{"name":7,"instance":0}},`+
			`"not an object"]}`))
	if v.Controller != nil || v.HasChildren {
		t.Errorf("controller %v, children %v: want none", v.Controller, v.HasChildren)
	}
	var got []string
	for _, w := range v.Workers {
		got = append(got, fmt.Sprintf("%s pid=%d conn=%s state=%s", w.Name(), w.PID, w.ConnID, w.State))
	}
	want := []string{
		"svc pid=12 conn=x1 state=connected",      // instance 1.5: unknown; pid from the state
		"(unnamed) pid=0 conn= state=connected",   // not an object: an empty row
		"(unnamed) pid=0 conn=x2 state=connected", // name 7: not a string
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows:\n got %q\nwant %q", got, want)
	}
	for _, w := range []string{"process monitor: unreadable status", "memory monitor: unreadable status",
		"controller 01234567 failed: no children", "a status part failed: boom"} {
		if !strings.Contains(strings.Join(v.Warnings, "\n"), w) {
			t.Errorf("warnings %q lack %q", v.Warnings, w)
		}
	}
}

func TestWorkerNames(t *testing.T) {
	for _, c := range []struct {
		w              Worker
		name, describe string
	}{
		{Worker{Service: "web", Instance: 2, PID: 7, ConnID: "0123456789"}, "web.2", "web.2 (pid 7, connection 01234567)"},
		{Worker{Service: "web", Instance: -1}, "web", "web"},
		{Worker{Instance: 0, ConnID: "abc"}, "(unnamed)", "(unnamed) (connection abc)"},
		{Worker{Controller: true, PID: 1}, "controller", "controller (pid 1)"},
	} {
		if n, d := c.w.Name(), c.w.Describe(); n != c.name || d != c.describe {
			t.Errorf("%+v: %q, %q; want %q, %q", c.w, n, d, c.name, c.describe)
		}
	}
}
