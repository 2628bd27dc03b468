package metrics

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/control"
	"github.com/vigild/vigil/internal/testutil"
	"github.com/vigild/vigil/monitor"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
	"github.com/vigild/vigil/worker"
	"github.com/vigild/vigil/worker/workermetrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a real supervisor on a real socket, with a controller
// registered from this process (its parent pid, as the server is told)
// that answers "children" with what the test sets.
type fixture struct {
	srv      *supervisor.Server
	socket   string
	children control.Children
}

func startFixture(t *testing.T, monitors ...supervisor.Monitor) *fixture {
	t.Helper()
	f := &fixture{srv: &supervisor.Server{ParentPID: os.Getpid(), Monitors: monitors}}
	f.socket = filepath.Join(t.TempDir(), "s.ipc")
	l, err := supervisor.Listen(f.socket, supervisor.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	ctrl := f.dial(t, rpc.Handlers{"children": func(ctx context.Context, call *rpc.Call) error {
		return call.Finish(f.children)
	}})
	if _, err := ctrl.Register(context.Background(), map[string]any{"role": "controller", "process_id": os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) dial(t *testing.T, handlers rpc.Handlers) *supervisor.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := supervisor.DialOptions(ctx, f.socket, supervisor.ClientOptions{Handlers: handlers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startSleep starts a real process for a child to name.
func startSleep(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// serve serves the collector on a real TCP port; it returns the URL.
func serve(t *testing.T, c *Collector) string {
	t.Helper()
	l, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, c.Handler(), nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + l.Addr().String() + "/metrics"
}

// get scrapes url with an Accept header; it returns the body (gunzipped)
// and the response.
func get(t *testing.T, client *http.Client, url, accept, encoding string) (string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("Accept-Encoding", encoding)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r = gz
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), resp
}

// parse parses the Prometheus text format.
func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, text)
	}
	return fams
}

// value finds the sample of a family whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		got := map[string]string{}
		for _, lp := range m.Label {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func ptr[T any](v T) *T { return &v }

// TestScrapeShowsTheFleet: the controller's children and statistics, the
// process monitor's figures of the real processes, and the supervisor's
// own counts come out as the documented families, labelled by service and
// instance and never by pid or connection id, in both formats, gzipped on
// request.
func TestScrapeShowsTheFleet(t *testing.T) {
	pids := []int{startSleep(t), startSleep(t)}
	proc := monitor.NewProcess(monitor.ProcessOptions{PPID: os.Getpid(), Interval: 100 * time.Millisecond})
	f := startFixture(t, proc)
	now := time.Now()
	started := now.Add(-time.Minute)
	readyAt := started.Add(1500 * time.Millisecond)
	f.children = control.Children{
		Children: []control.Child{
			{Service: "web", Instance: 0, PID: pids[0], State: "ready", Restarts: 2, StartedAt: &started},
			{Service: "web", Instance: 1, PID: pids[1], State: "unhealthy", StartedAt: &started},
			// A replacement being started for instance 1: not a second series.
			{Service: "web", Instance: 1, PID: 999999, State: "starting", StartedAt: &now},
			{Service: "web", Instance: 2, State: "backing off", NextRestart: ptr(now.Add(30 * time.Second))},
			{Service: "job", Instance: 0, State: "stopped"},
		},
		Statistics: map[string]container.Statistics{
			"web": {Service: "web", Spawns: 7, Restarts: 4, Failures: 3, OutputDroppedLines: 5,
				Exits: []container.ExitCount{
					{Instance: 0, Reason: container.ExitCode, Code: 3, Count: 2},
					{Instance: 2, Reason: container.ExitSignal, Code: -1, Signal: "SIGSEGV", Count: 1},
				},
				ReadyLatency: container.Histogram{Bounds: []float64{1, 2}, Counts: []uint64{0, 2}, Count: 2, Sum: 3},
				ReadyAt:      map[int]time.Time{0: readyAt, 1: started.Add(-time.Hour)},
			},
			"job": {Service: "job"},
		},
	}
	// A worker of web.0 registers (the test process registers it: root, or
	// its own pid).
	w := f.dial(t, nil)
	if _, err := w.Register(context.Background(), map[string]any{"process_id": pids[0], "name": "web", "instance": 0}); err != nil {
		t.Fatal(err)
	}
	c := New(Options{Server: f.srv, Process: proc, Version: "v1.2.3"})
	url := serve(t, c)
	client := &http.Client{Timeout: 20 * time.Second}

	var text string
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(20 * time.Second)
	for {
		text, _ = get(t, client, url, "", "identity")
		fams = parse(t, text)
		if _, ok := value(t, fams, "vigil_worker_private_memory_bytes", map[string]string{"service": "web", "worker": "web.1"}); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no memory figures after 20s:\n%s", text)
		}
		time.Sleep(50 * time.Millisecond)
	}

	web0 := map[string]string{"service": "web", "worker": "web.0"}
	web1 := map[string]string{"service": "web", "worker": "web.1"}
	web2 := map[string]string{"service": "web", "worker": "web.2"}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vigil_service_desired_workers", map[string]string{"service": "web"}, 3},
		{"vigil_service_desired_workers", map[string]string{"service": "job"}, 0},
		{"vigil_service_running_workers", map[string]string{"service": "web"}, 2},
		{"vigil_service_ready_workers", map[string]string{"service": "web"}, 1},
		{"vigil_service_spawns_total", map[string]string{"service": "web"}, 7},
		{"vigil_service_restarts_total", map[string]string{"service": "web"}, 4},
		{"vigil_service_failures_total", map[string]string{"service": "web"}, 3},
		{"vigil_service_log_lines_dropped_total", map[string]string{"service": "web"}, 5},
		{"vigil_service_ready_latency_seconds", map[string]string{"service": "web"}, 2},
		{"vigil_worker_up", web0, 1}, {"vigil_worker_up", web2, 0},
		{"vigil_worker_ready", web0, 1}, {"vigil_worker_ready", web1, 0},
		{"vigil_worker_healthy", web0, 1}, {"vigil_worker_healthy", web1, 0},
		{"vigil_worker_restarts_total", web0, 2},
		{"vigil_worker_start_timestamp_seconds", web0, unixSeconds(started)},
		{"vigil_worker_ready_timestamp_seconds", web0, unixSeconds(readyAt)},
		{"vigil_worker_exits_total", map[string]string{"service": "web", "worker": "web.0", "reason": "exit", "code": "3"}, 2},
		{"vigil_worker_exits_total", map[string]string{"service": "web", "worker": "web.2", "reason": "signal", "signal": "SIGSEGV"}, 1},
		{"vigil_metrics_source_up", map[string]string{"source": "controller"}, 1},
		{"vigil_metrics_source_up", map[string]string{"source": "process_monitor"}, 1},
		{"vigil_supervisor_registrations", nil, 2},
		{"vigil_build_info", map[string]string{"version": "v1.2.3"}, 1},
	} {
		got, ok := value(t, fams, tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	// The ready time of an earlier process is not the current one's.
	if v, ok := value(t, fams, "vigil_worker_ready_timestamp_seconds", web1); ok {
		t.Errorf("web.1 has a ready timestamp %v from before its start", v)
	}
	if b, ok := value(t, fams, "vigil_worker_backoff_seconds", web2); !ok || b < 20 || b > 30 {
		t.Errorf("web.2 backoff %v (%v), want about 30s", b, ok)
	}
	if b, ok := value(t, fams, "vigil_worker_backoff_seconds", web0); ok {
		t.Errorf("web.0, not backing off, has a backoff of %v", b)
	}
	for _, name := range []string{"vigil_worker_cpu_seconds_total", "vigil_worker_resident_memory_bytes", "vigil_worker_proportional_memory_bytes"} {
		if v, ok := value(t, fams, name, web0); !ok || v < 0 || (name != "vigil_worker_cpu_seconds_total" && v == 0) {
			t.Errorf("%s of web.0 = %v (%v)", name, v, ok)
		}
	}
	if v, ok := value(t, fams, "vigil_process_monitor_capture_timestamp_seconds", nil); !ok || time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("capture timestamp %v (%v)", v, ok)
	}
	// One series per instance: web.1's replacement is not a second one.
	if n := len(fams["vigil_worker_up"].Metric); n != 4 {
		t.Errorf("vigil_worker_up has %d series, want 4 (web.0-2, job.0)", n)
	}
	// The supervisor's own process.
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "promhttp_metric_handler_requests_total", "vigil_supervisor_calls_total"} {
		if fams[name] == nil {
			t.Errorf("no family %s", name)
		}
	}
	// No label carries a pid or a connection id.
	for _, mf := range fams {
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if n := lp.GetName(); n == "pid" || n == "process_id" || n == "connection_id" {
					t.Errorf("%s has a label %s", mf.GetName(), n)
				}
				for _, pid := range pids {
					if lp.GetValue() == strconv.Itoa(pid) {
						t.Errorf("%s has a label %s=%s: a pid", mf.GetName(), lp.GetName(), lp.GetValue())
					}
				}
			}
		}
	}

	// OpenMetrics when asked for it, gzipped when accepted.
	om, resp := get(t, client, url, "application/openmetrics-text;version=1.0.0,text/plain;q=0.5", "gzip")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("Content-Type %q, want OpenMetrics", ct)
	}
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
	}
	if !strings.HasSuffix(om, "# EOF\n") || !strings.Contains(om, "# TYPE vigil_worker_restarts counter") {
		t.Errorf("not OpenMetrics:\n%.2000s", om)
	}
	if _, resp := get(t, client, url, "text/plain", "identity"); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q, want the text format 0.0.4", resp.Header.Get("Content-Type"))
	}
}

// TestScrapeWithoutController: with no controller registered, the scrape
// still answers, and says the controller is missing.
func TestScrapeWithoutController(t *testing.T) {
	srv := &supervisor.Server{}
	sock := filepath.Join(t.TempDir(), "s.ipc")
	l, err := supervisor.Listen(sock, supervisor.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()
	fams, err := New(Options{Server: srv}).Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range fams {
		byName[mf.GetName()] = mf
	}
	if v, ok := value(t, byName, "vigil_metrics_source_up", map[string]string{"source": "controller"}); !ok || v != 0 {
		t.Errorf("source_up of the controller %v (%v), want 0", v, ok)
	}
	if byName["vigil_worker_up"] != nil {
		t.Errorf("worker series without a controller")
	}
}

// TestWorkersOwnMetrics: a Go worker using workermetrics has its own
// metrics in the scrape, labelled by its service and instance (its own
// labels of those names renamed), once [metrics] workers is on; not before.
func TestWorkersOwnMetrics(t *testing.T) {
	f := startFixture(t)
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "app_requests_total", Help: "Requests."}, []string{"service"})
	requests.WithLabelValues("upstream").Add(42)
	reg.MustRegister(requests, collectors.NewGoCollector())
	ctx, cancel := context.WithCancel(context.Background())
	registered := make(chan string, 1)
	w, err := worker.Start(ctx, workermetrics.Add(worker.Options{
		Socket: f.socket, Name: "api", OnRegister: func(id string) { registered <- id },
		State: map[string]any{"instance": 3},
	}, reg))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); w.Wait() }()
	select {
	case <-registered:
	case <-time.After(20 * time.Second):
		t.Fatal("the worker did not register")
	}
	gather := func(workers bool) map[string]*dto.MetricFamily {
		fams, err := New(Options{Server: f.srv, Workers: workers}).Gather()
		if err != nil {
			t.Fatal(err)
		}
		// What is served must parse back.
		var b bytes.Buffer
		for _, mf := range fams {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				t.Fatal(err)
			}
		}
		return parse(t, b.String())
	}
	if fams := gather(false); fams["app_requests_total"] != nil {
		t.Errorf("the worker's metrics scraped with workers off")
	}
	fams := gather(true)
	want := map[string]string{"service": "api", "worker": "api.3", "exported_service": "upstream"}
	if v, ok := value(t, fams, "app_requests_total", want); !ok || v != 42 {
		t.Errorf("app_requests_total%v = %v (%v)", want, v, ok)
	}
	if v, ok := value(t, fams, "vigil_worker_metrics_up", map[string]string{"service": "api", "worker": "api.3"}); !ok || v != 1 {
		t.Errorf("vigil_worker_metrics_up = %v (%v)", v, ok)
	}
	// The worker's Go collector's families join the supervisor's own: one
	// series each, the worker's labelled.
	if mf := fams["go_goroutines"]; mf == nil || len(mf.Metric) != 2 {
		t.Errorf("go_goroutines: %v", mf)
	}
	if _, ok := value(t, fams, "go_goroutines", map[string]string{"service": "api", "worker": "api.3"}); !ok {
		t.Errorf("no go_goroutines of the worker")
	}
}

// TestListenUnixSocket: a Unix socket path gets the mode asked, replaces a
// stale socket file, refuses a live one, and is removed when served no
// more.
func TestListenUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	l, err := Listen(path, 0o660)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("mode %v (%v), want 0660", fi.Mode().Perm(), err)
	}
	if _, err := Listen(path, 0); err == nil || !strings.Contains(err.Error(), "another process serves it") {
		t.Errorf("over a live socket: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := &supervisor.Server{}
	go func() { done <- Serve(ctx, l, New(Options{Server: srv}).Handler(), nil) }()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	text, _ := get(t, client, "http://vigil/metrics", "", "identity")
	parse(t, text)
	client.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("the socket file is left: %v", err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, 0); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a regular file: %v", err)
	}
}

// TestMergeKeepsOneTypePerName: a worker family joins one of the same
// name and type, never changing the one it joins, and one of another type
// is left out; the result is sorted by name.
func TestMergeKeepsOneTypePerName(t *testing.T) {
	fam := func(name string, typ dto.MetricType, n int) *dto.MetricFamily {
		mf := &dto.MetricFamily{Name: ptr(name), Help: ptr("h"), Type: typ.Enum()}
		for range n {
			mf.Metric = append(mf.Metric, &dto.Metric{Gauge: &dto.Gauge{Value: ptr(1.0)}, Counter: nil})
		}
		return mf
	}
	own := []*dto.MetricFamily{fam("go_goroutines", dto.MetricType_GAUGE, 1)}
	vigil := []*dto.MetricFamily{fam("vigil_b", dto.MetricType_GAUGE, 1), fam("vigil_empty", dto.MetricType_GAUGE, 0)}
	workers := []*dto.MetricFamily{fam("go_goroutines", dto.MetricType_GAUGE, 2), fam("vigil_b", dto.MetricType_COUNTER, 1), fam("app_a", dto.MetricType_GAUGE, 1)}
	out := merge(own, vigil, workers, slog.New(slog.DiscardHandler))
	var names []string
	for _, mf := range out {
		names = append(names, fmt.Sprintf("%s:%d", mf.GetName(), len(mf.Metric)))
	}
	if got := strings.Join(names, " "); got != "app_a:1 go_goroutines:3 vigil_b:1" {
		t.Errorf("merged: %s", got)
	}
	if len(own[0].Metric) != 1 {
		t.Errorf("the supervisor's own family was changed: %d samples", len(own[0].Metric))
	}
}

// TestDecodeChildrenAsEncodingJSON: the scanner decodes the fields the
// series use as encoding/json does.
func TestDecodeChildrenAsEncodingJSON(t *testing.T) {
	kids, _ := fleet(3)
	next := time.Now().Add(time.Minute).Round(0)
	kids.Children[1].NextRestart = &next
	kids.Children[2].PID, kids.Children[2].State = 0, "backing off"
	st := kids.Statistics["web"]
	st.Spawns, st.Restarts, st.Failures, st.OutputDroppedLines = 9, 6, 3, 12
	st.Exits = append(st.Exits, container.ExitCount{Instance: 2, Reason: container.ExitSignal, Code: -1, Signal: "SIGSEGV", Count: 4},
		container.ExitCount{Instance: 2, Reason: container.ExitCode, Code: 0, Count: 1})
	st.ReadyLatency.Counts[3], st.ReadyLatency.Count, st.ReadyLatency.Sum = 2, 2, 0.5
	kids.Statistics["web"] = st
	line, err := json.Marshal(kids)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rpc.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeChildren(m)
	if err != nil {
		t.Fatal(err)
	}
	var want control.Children
	if err := json.Unmarshal(line, &want); err != nil {
		t.Fatal(err)
	}
	for i := range want.Children {
		w, g := want.Children[i], got.Children[i]
		w.Uptime, w.LastExit, w.Status, w.LastError = nil, nil, "", "" // not decoded: no series uses them
		if !reflect.DeepEqual(w, g) {
			t.Errorf("child %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	ws, gs := want.Statistics["web"], got.Statistics["web"]
	ws.RestartRate, ws.FailureRate = 0, 0 // not decoded either
	if !reflect.DeepEqual(ws, gs) {
		t.Errorf("statistics:\n got %+v\nwant %+v", gs, ws)
	}
	if _, err := decodeChildren(mustParse(t, `{"id":3,"finished":true}`)); err == nil {
		t.Error("a reply without children decoded")
	}
}

func mustParse(t *testing.T, s string) *rpc.Message {
	t.Helper()
	m, err := rpc.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestExampleRulesNameRealMetrics: every vigil_ metric that the example
// alert rules and their tests name is one a scrape can have.
func TestExampleRulesNameRealMetrics(t *testing.T) {
	kids, proc := fleet(2)
	mem := monitor.MemoryStatus{TotalSize: ptr(uint64(1)), FreeSize: ptr(uint64(1))}
	s := scrape{stats: &supervisor.Stats{Calls: []supervisor.CallCount{{Operation: "status", Outcome: "ok", Count: 1}}},
		children: &kids, proc: &proc, mem: &mem, sources: map[string]bool{sourceController: true},
		counts: map[string]monitor.ServiceCounts{"web": {Kills: map[string]int{"maximum_size_limit": 1}, Increases: 1}}}
	var b builder
	s.build(&b, time.Now())
	b.buildInfo("v0")
	known := map[string]bool{}
	for _, mf := range b.families {
		known[mf.GetName()] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				known[mf.GetName()+suffix] = true
			}
		}
	}
	re := regexp.MustCompile(`\bvigil_[a-z_]+`)
	for _, file := range []string{"rules.yml", "rules_test.yml"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", "prometheus", file))
		if err != nil {
			t.Fatal(err)
		}
		names := re.FindAllString(string(b), -1)
		if len(names) == 0 {
			t.Errorf("%s names no vigil_ metric", file)
		}
		for _, name := range names {
			if !known[name] {
				t.Errorf("%s names %s, which no scrape has", file, name)
			}
		}
	}
}

// metricsController is a controller's state for control.MetricsHandler.
type metricsController struct {
	children []container.ChildInfo
	stats    []container.Statistics
}

func (m *metricsController) Children() []container.ChildInfo    { return m.children }
func (m *metricsController) Statistics() []container.Statistics { return m.stats }
func (m *metricsController) RestartChildren(context.Context, string, int) error {
	return errors.New("not in this test")
}

// TestScrapeAsksTheMetricsOperation: a controller that serves "metrics"
// is asked by it, not by "children"; one that does not is asked by
// "children" (TestScrapeShowsTheFleet).
func TestScrapeAsksTheMetricsOperation(t *testing.T) {
	pid := startSleep(t)
	started := time.Now().Add(-time.Minute)
	ctl := &metricsController{
		children: []container.ChildInfo{{Service: "api", Instance: 0, PID: pid, State: container.StateReady, Started: started, Restarts: 1}},
		stats: []container.Statistics{{Service: "api", Spawns: 2, Restarts: 1,
			Exits:   []container.ExitCount{{Instance: 0, Reason: container.ExitCode, Code: 2, Count: 1}},
			ReadyAt: map[int]time.Time{0: started.Add(time.Second)}}},
	}
	srv := &supervisor.Server{ParentPID: os.Getpid()}
	sock := filepath.Join(t.TempDir(), "s.ipc")
	l, err := supervisor.Listen(sock, supervisor.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()
	c, err := supervisor.DialOptions(ctx, sock, supervisor.ClientOptions{Handlers: rpc.Handlers{
		control.MetricsOperation: control.MetricsHandler(ctl),
		"children": func(ctx context.Context, call *rpc.Call) error {
			t.Error("asked for children, with the metrics operation served")
			return call.Finish(control.Children{})
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Register(ctx, map[string]any{"role": "controller", "process_id": os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	fams, err := New(Options{Server: srv}).Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range fams {
		byName[mf.GetName()] = mf
	}
	api0 := map[string]string{"service": "api", "worker": "api.0"}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vigil_worker_up", api0, 1},
		{"vigil_worker_restarts_total", api0, 1},
		{"vigil_worker_ready_timestamp_seconds", api0, unixSeconds(started.Add(time.Second))},
		{"vigil_worker_exits_total", map[string]string{"worker": "api.0", "reason": "exit", "code": "2"}, 1},
		{"vigil_service_spawns_total", map[string]string{"service": "api"}, 2},
	} {
		if v, ok := value(t, byName, tc.name, tc.labels); !ok || v != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}
}

// TestServeBoundsConnections: a client that opens many connections to the
// endpoint and sends nothing held one descriptor each of the process
// serving it (the supervisor: its socket and monitors need them) until the
// server's timeouts; beyond MaxConnections they are closed at once, and a
// scrape is served again once some close.
func TestServeBoundsConnections(t *testing.T) {
	l, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, New(Options{Server: &supervisor.Server{}}).Handler(), nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	const held = 3 * MaxConnections
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range held {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if n := testutil.ClosedByPeer(conns, time.Second); n < held-MaxConnections {
		t.Errorf("%d of %d idle connections closed; at most %d are served", n, held, MaxConnections)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("http://" + l.Addr().String() + "/metrics")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scrape once the connections closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
