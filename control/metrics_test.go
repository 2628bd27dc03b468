package control

import (
	"context"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/rpc"
)

// statsController is a fakeController with statistics of its own.
type statsController struct {
	fakeController
	stats []container.Statistics
}

func (s *statsController) Statistics() []container.Statistics { return s.stats }

// TestMetricsOperationCarriesWhatChildrenDoes: the "metrics" reply, read
// by DecodeMetrics, has the children and the statistics the series use,
// as "children" has them: the ready time only of a process that has been
// ready, and a service's name of any bytes.
func TestMetricsOperationCarriesWhatChildrenDoes(t *testing.T) {
	started := time.Date(2026, 12, 1, 10, 0, 0, 123, time.UTC)
	f := &statsController{fakeController: fakeController{children: []container.ChildInfo{
		{Service: "web", Instance: 0, PID: 42, State: container.StateReady, Started: started, Restarts: 2},
		{Service: "web", Instance: 1, State: container.StateBackingOff, NextRestart: started.Add(time.Second)},
		{Service: "web", Instance: 0, PID: 43, State: container.StateStarting, Started: started.Add(time.Minute)},
		{Service: `odd "name"\é`, Instance: 0, PID: 44, State: container.StateUnhealthy, Started: started},
	}}, stats: []container.Statistics{
		{Service: "web", Spawns: 5, Restarts: 3, Failures: 2, OutputDroppedLines: 7,
			Exits: []container.ExitCount{
				{Instance: 0, Reason: container.ExitSignal, Code: -1, Signal: syscall.SIGSEGV.String(), Count: 1},
				{Instance: 1, Reason: container.ExitCode, Code: 3, Count: 4},
			},
			ReadyLatency: container.Histogram{Bounds: []float64{0.5, 1}, Counts: []uint64{1, 2}, Count: 3, Sum: 4.5},
			ReadyAt:      map[int]time.Time{0: started.Add(time.Second), 1: started.Add(-time.Hour)},
		},
		{Service: "idle"},
	}}
	c := connect(t, rpc.Handlers{MetricsOperation: MetricsHandler(f)})
	reply, err := c.Call(context.Background(), MetricsOperation, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMetrics(reply)
	if err != nil {
		t.Fatalf("%v\n%s", err, reply)
	}
	ptr := func(t time.Time) *time.Time { return &t }
	wantChildren := []Child{
		{Service: "web", Instance: 0, PID: 42, State: "ready", Restarts: 2, StartedAt: ptr(started)},
		{Service: "web", Instance: 1, State: "backing off", NextRestart: ptr(started.Add(time.Second))},
		{Service: "web", Instance: 0, PID: 43, State: "starting", StartedAt: ptr(started.Add(time.Minute))},
		{Service: `odd "name"\é`, Instance: 0, PID: 44, State: "unhealthy", StartedAt: ptr(started)},
	}
	if !reflect.DeepEqual(got.Children, wantChildren) {
		t.Errorf("children:\n got %+v\nwant %+v", got.Children, wantChildren)
	}
	web := got.Statistics["web"]
	want := f.stats[0]
	// Ready times travel with the children: web.0's (its current process
	// was ready after it started); not web.1's, whose process is gone, nor
	// the replacement's.
	want.ReadyAt = map[int]time.Time{0: started.Add(time.Second)}
	if !reflect.DeepEqual(web, want) {
		t.Errorf("statistics of web:\n got %+v\nwant %+v", web, want)
	}
	if idle, ok := got.Statistics["idle"]; !ok || idle.Service != "idle" || len(idle.Exits) != 0 {
		t.Errorf("statistics of idle: %+v (%v)", idle, ok)
	}
	if _, ok := got.Statistics[`odd "name"\é`]; !ok {
		t.Errorf("no statistics for the service of an odd name: %v", got.Statistics)
	}
	if _, err := DecodeMetrics(mustParseMessage(t, `{"id":1,"finished":true}`)); err == nil {
		t.Error("a reply without services decoded")
	}
	if _, err := DecodeMetrics(mustParseMessage(t, `{"services":[{"service":"x","workers":[[0,1]]}]}`)); err == nil {
		t.Error("a worker of 2 fields decoded")
	}
}

func mustParseMessage(t *testing.T, s string) *rpc.Message {
	t.Helper()
	m, err := rpc.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
