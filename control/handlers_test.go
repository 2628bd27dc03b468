package control

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/rpc"
)

// fakeController is a controller's state for the logic of the handlers;
// the operations with a real controller are tested end to end in
// cmd/vigil.
type fakeController struct {
	children []container.ChildInfo
	restart  func(service string, instance int) error
}

func (f *fakeController) Children() []container.ChildInfo { return f.children }
func (f *fakeController) Statistics() []container.Statistics {
	return []container.Statistics{{Service: "web", Spawns: 3}}
}
func (f *fakeController) RestartChildren(ctx context.Context, service string, instance int) error {
	return f.restart(service, instance)
}

// connect serves h on one end of a pipe and returns the other end.
func connect(t testing.TB, h rpc.Handlers) *rpc.Conn {
	t.Helper()
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	server := rpc.NewConn(a, rpc.Options{Accepted: true, Handlers: h})
	client := rpc.NewConn(b, rpc.Options{})
	done := make(chan struct{}, 2)
	go func() { _ = server.Run(ctx); done <- struct{}{} }()
	go func() { _ = client.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); a.Close(); b.Close(); <-done; <-done })
	return client
}

func TestChildrenWireShape(t *testing.T) {
	started := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	exit := container.ExitStatus{Code: -1, Signal: 9}
	f := &fakeController{children: []container.ChildInfo{
		{Service: "web", Instance: 0, PID: 42, State: container.StateReady, Started: started, Uptime: 1500 * time.Millisecond, Status: "serving"},
		{Service: "web", Instance: 1, State: container.StateBackingOff, Restarts: 2, LastExit: &exit, NextRestart: started.Add(time.Second), LastError: "boom"},
	}}
	c := connect(t, Handlers(f, Options{Tracking: "process group and descent"}))
	reply, err := c.Call(context.Background(), "children", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Children   []map[string]any          `json:"children"`
		Statistics map[string]map[string]any `json:"statistics"`
		Tracking   string                    `json:"tracking"`
	}
	if err := reply.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Children) != 2 || got.Tracking != "process group and descent" || got.Statistics["web"]["spawns"] != 3.0 {
		t.Fatalf("reply = %s", reply)
	}
	want0 := `{"instance":0,"last_exit":null,"next_restart":null,"pid":42,"restarts":0,"service":"web","started_at":"2026-12-01T10:00:00Z","state":"ready","status":"serving","uptime":1.5}`
	if b, _ := json.Marshal(got.Children[0]); string(b) != want0 {
		t.Errorf("child 0 = %s\nwant      %s", b, want0)
	}
	if c1 := got.Children[1]; c1["last_exit"] != "signal killed" || c1["next_restart"] != "2026-12-01T10:00:01Z" || c1["started_at"] != nil || c1["last_error"] != "boom" || c1["state"] != "backing off" {
		t.Errorf("child 1 = %v", c1)
	}
	// And the type reads back what it wrote.
	var back Children
	if err := reply.Decode(&back); err != nil || back.Children[0].StartedAt == nil || !back.Children[0].StartedAt.Equal(started) {
		t.Errorf("decoded back: %+v, %v", back, err)
	}
}

func TestRestartChildrenArguments(t *testing.T) {
	var gotService string
	var gotInstance int
	f := &fakeController{restart: func(s string, i int) error {
		gotService, gotInstance = s, i
		if s == "nope" {
			return container.ErrUnknownService
		}
		return nil
	}}
	c := connect(t, Handlers(f, Options{}))
	for _, tc := range []struct {
		params  map[string]any
		wantErr string
		service string
		inst    int
	}{
		{map[string]any{"service": "web"}, "", "web", -1},
		{map[string]any{"service": "web", "instance": 2}, "", "web", 2},
		{map[string]any{}, "'service' is required", "", 0},
		{map[string]any{"service": "web", "instance": -3}, "must be 0 or more", "", 0},
		{map[string]any{"service": "nope"}, "unknown service", "nope", -1},
	} {
		gotService, gotInstance = "", 0
		_, err := c.Call(context.Background(), "restart_children", tc.params, nil)
		var re *rpc.RemoteError
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tc.params, err)
		case tc.wantErr != "" && (!errors.As(err, &re) || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v: %v, want a failed reply saying %q", tc.params, err, tc.wantErr)
		}
		if tc.service != "" && (gotService != tc.service || gotInstance != tc.inst) {
			t.Errorf("%v: restarted %q %d, want %q %d", tc.params, gotService, gotInstance, tc.service, tc.inst)
		}
	}
}

// versionedController counts the calls of Children, whose answer changes
// only with its version.
type versionedController struct {
	fakeController
	version uint64
	calls   int
}

func (v *versionedController) Version() uint64 { return v.version }
func (v *versionedController) Children() []container.ChildInfo {
	v.calls++
	return v.fakeController.Children()
}

// childrenOf calls "children" and decodes the reply.
func childrenOf(t *testing.T, c *rpc.Conn) Children {
	t.Helper()
	reply, err := c.Call(context.Background(), "children", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got Children
	if err := reply.Decode(&got); err != nil {
		t.Fatalf("%v: %s", err, reply)
	}
	return got
}

func TestChildrenEncodedOncePerVersion(t *testing.T) {
	started := time.Now().Add(-time.Minute)
	f := &versionedController{fakeController: fakeController{children: []container.ChildInfo{
		{Service: "web", Instance: 0, PID: 42, State: container.StateReady, Started: started, Uptime: time.Minute, Status: `a "quoted" "uptime":null status`},
		{Service: "web", Instance: 1, State: container.StateBackingOff, Restarts: 2, LastError: "boom"},
	}}, version: 1}
	c := connect(t, Handlers(f, Options{Tracking: "cgroup /x"}))
	first := childrenOf(t, c)
	time.Sleep(50 * time.Millisecond)
	second := childrenOf(t, c)
	if f.calls != 1 {
		t.Errorf("Children read %d times for one version, want once", f.calls)
	}
	if len(second.Children) != 2 || second.Tracking != "cgroup /x" || second.Statistics["web"].Spawns != 3 {
		t.Fatalf("reply = %+v", second)
	}
	if d := *second.Children[0].Uptime - *first.Children[0].Uptime; d < 0.04 || d > 5 {
		t.Errorf("a running child's uptime went from %v to %v over 50ms", *first.Children[0].Uptime, *second.Children[0].Uptime)
	}
	if u := second.Children[1].Uptime; u != nil {
		t.Errorf("a child with no process has uptime %v, want none", *u)
	}
	if s := second.Children[0].Status; s != `a "quoted" "uptime":null status` {
		t.Errorf("status = %q", s)
	}
	// The rest as encoding/json writes it.
	first.Children[0].Uptime, second.Children[0].Uptime = nil, nil
	a, _ := json.Marshal(first)
	b, _ := json.Marshal(second)
	if string(a) != string(b) {
		t.Errorf("replies differ beyond the uptimes:\n%s\n%s", a, b)
	}

	f.version++
	f.children[1].State, f.children[1].PID = container.StateReady, 43
	third := childrenOf(t, c)
	if f.calls != 2 || third.Children[1].PID != 43 || third.Children[1].State != "ready" {
		t.Errorf("after a change (%d reads): %+v", f.calls, third.Children[1])
	}
}

// BenchmarkChildren measures the "children" reply with 1,000 children,
// encoded anew each time (a controller without a version) and kept while
// the version is the same.
func BenchmarkChildren(b *testing.B) {
	infos := make([]container.ChildInfo, 1000)
	exit := container.ExitStatus{Code: 1}
	for i := range infos {
		infos[i] = container.ChildInfo{Service: "web", Instance: i, PID: 1000 + i, State: container.StateReady,
			Started: time.Now(), Uptime: time.Hour, Restarts: 1, LastExit: &exit}
	}
	for _, versioned := range []bool{false, true} {
		name := "each-call"
		var ctrl Controller = &fakeController{children: infos}
		if versioned {
			name = "per-version"
			ctrl = &versionedController{fakeController: fakeController{children: infos}, version: 1}
		}
		b.Run(name, func(b *testing.B) {
			c := connect(b, Handlers(ctrl, Options{}))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Call(context.Background(), "children", nil, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
