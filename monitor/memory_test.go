package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/procmetrics"
	"github.com/vigild/vigil/supervisor"
)

// fast are the intervals of the tests.
func fast(o MemoryOptions) MemoryOptions {
	o.Interval = 300 * time.Millisecond
	o.PollInterval = 50 * time.Millisecond
	return o
}

func TestMaximumSizeLimitSamplesThenStops(t *testing.T) {
	b := base(t)
	dump := filepath.Join(t.TempDir(), "dumps")
	logger, logs := testLogger()
	m := NewMemory(fast(MemoryOptions{
		MaximumSizeLimit: (b + 40) * mib,
		MemorySample:     &SampleOptions{Duration: 100 * time.Millisecond, Timeout: 10 * time.Second},
		DumpDirectory:    dump,
		Logger:           logger,
	}))
	srv := startServer(t, m)
	w := startWorker(t, srv.path, "grower", growth{step: 10, top: 100, every: 100 * time.Millisecond})

	if sig := w.exited(t, 30*time.Second); sig != syscall.SIGINT {
		t.Fatalf("worker ended with signal %v, want SIGINT\nlogs:\n%s", sig, logs)
	}
	waitFor(t, "the stop to be logged", func() bool { return strings.Contains(logs.String(), "process stopped") })

	files, err := filepath.Glob(filepath.Join(dump, "*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("dump files %v (%v), want one\nlogs:\n%s", files, err, logs)
	}
	st, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("dump mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(files[0])
	if !strings.Contains(string(data), "total_retained") {
		t.Errorf("dump %s holds %q, want the worker's sample", files[0], data)
	}
	if !strings.Contains(filepath.Base(files[0]), "grower-"+strconv.Itoa(w.pid())) {
		t.Errorf("dump name %s does not name the service and pid", files[0])
	}
	out := logs.String()
	for _, want := range []string{"reason=maximum_size_limit", "maximum_size_limit=" + strconv.FormatUint((b+40)*mib, 10),
		"memory sample written", "path=" + files[0], "outcome=\"exited after SIGINT\""} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if k := m.Snapshot().Kills; k[ReasonMaximumSize] != 1 || len(k) != 1 {
		t.Errorf("kills %v, want one for %s", k, ReasonMaximumSize)
	}
}

func TestLeakIsStopped(t *testing.T) {
	logger, logs := testLogger()
	m := NewMemory(MemoryOptions{
		Interval:      200 * time.Millisecond,
		PollInterval:  50 * time.Millisecond,
		IncreaseLimit: 2,
		ThresholdSize: 5 * mib,
		Logger:        logger,
	})
	srv := startServer(t, m)
	w := startWorker(t, srv.path, "leaky", growth{step: 12, top: 200, every: 250 * time.Millisecond})
	if sig := w.exited(t, 30*time.Second); sig != syscall.SIGINT {
		t.Fatalf("worker ended with signal %v, want SIGINT\nlogs:\n%s", sig, logs)
	}
	waitFor(t, "the stop to be logged", func() bool { return strings.Contains(logs.String(), "process stopped") })
	if k := m.Snapshot().Kills; k[ReasonIncrease] != 1 || len(k) != 1 {
		t.Errorf("kills %v, want one for %s\nlogs:\n%s", k, ReasonIncrease, logs)
	}
	// Counted for its service too: the kill, and the increases behind it.
	if c := m.Counts()["leaky"]; c.Kills[ReasonIncrease] != 1 || len(c.Kills) != 1 || c.Increases < 2 {
		t.Errorf("counts of service leaky %+v, want one %s kill and 2 increases or more", c, ReasonIncrease)
	}
	if !strings.Contains(logs.String(), "reason=increase_limit") || !strings.Contains(logs.String(), "increase_count=2") {
		t.Errorf("logs lack the leak's figures:\n%s", logs)
	}
}

func TestTotalSizeLimitStopsLargestFirst(t *testing.T) {
	b := base(t) - 8 // the baseline, rounded down
	logger, logs := testLogger()
	m := NewMemory(fast(MemoryOptions{TotalSizeLimit: (2*b + 50) * mib, Logger: logger}))
	srv := startServer(t, m)
	small := startWorker(t, srv.path, "small", growth{start: 20})
	big := startWorker(t, srv.path, "big", growth{start: 60})
	if sig := big.exited(t, 30*time.Second); sig != syscall.SIGINT {
		t.Fatalf("big worker ended with signal %v, want SIGINT\nlogs:\n%s", sig, logs)
	}
	// Several more checks: the small one stays.
	time.Sleep(time.Second)
	if !small.alive() {
		t.Fatalf("the small worker was stopped too\nlogs:\n%s", logs)
	}
	if k := m.Snapshot().Kills; k[ReasonTotalSize] != 1 || len(k) != 1 {
		t.Errorf("kills %v, want one for %s\nlogs:\n%s", k, ReasonTotalSize, logs)
	}
	if !strings.Contains(logs.String(), "process_id="+strconv.Itoa(big.pid())) {
		t.Errorf("logs do not name the big worker:\n%s", logs)
	}
}

func TestIgnoredSIGINTGetsSIGKILL(t *testing.T) {
	b := base(t)
	logger, logs := testLogger()
	m := NewMemory(fast(MemoryOptions{
		MaximumSizeLimit: (b + 20) * mib,
		GracefulStop:     time.Hour, // overridden by the service's
		Services:         map[string]ServiceLimits{"stubborn": {GracefulStop: 300 * time.Millisecond}},
		Logger:           logger,
	}))
	srv := startServer(t, m)
	w := startWorker(t, srv.path, "stubborn", growth{start: 40, ignoreInt: true})
	if sig := w.exited(t, 30*time.Second); sig != syscall.SIGKILL {
		t.Fatalf("worker ended with signal %v, want SIGKILL\nlogs:\n%s", sig, logs)
	}
	waitFor(t, "the stop to be logged", func() bool { return strings.Contains(logs.String(), "process stopped") })
	if !strings.Contains(logs.String(), `outcome="killed with SIGKILL"`) {
		t.Errorf("logs lack the SIGKILL:\n%s", logs)
	}
}

func TestUnderLimitsNeverTouchedAndStatus(t *testing.T) {
	b := base(t)
	logger, logs := testLogger()
	m := NewMemory(fast(MemoryOptions{
		MaximumSizeLimit: (b + 100) * mib,
		TotalSizeLimit:   10 << 30,
		FreeSizeMinimum:  1 * mib,
		IncreaseLimit:    2,
		Services:         map[string]ServiceLimits{"calm": {ThresholdSize: 20 * mib}},
		Logger:           logger,
	}))
	srv := startServer(t, m)
	w := startWorker(t, srv.path, "calm", growth{start: 10})
	time.Sleep(3 * time.Second)
	if !w.alive() {
		t.Fatalf("worker under every limit was stopped\nlogs:\n%s", logs)
	}
	if strings.Contains(logs.String(), "stopping process") {
		t.Fatalf("a stop was logged:\n%s", logs)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := supervisor.Dial(ctx, srv.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw := st.Part("memory_monitor")
	if raw == nil {
		t.Fatalf("no memory_monitor in status: %v", st.Parts)
	}
	var mm map[string]json.RawMessage
	if err := json.Unmarshal(raw, &mm); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"total_size", "total_size_limit", "free_size_minimum", "processes", "kills"} {
		if _, ok := mm[k]; !ok {
			t.Errorf("memory_monitor lacks %q: %s", k, raw)
		}
	}
	if string(mm["total_size_limit"]) != strconv.Itoa(10<<30) || string(mm["kills"]) != "{}" {
		t.Errorf("memory_monitor %s", raw)
	}
	var procs map[string]map[string]json.RawMessage
	if err := json.Unmarshal(mm["processes"], &procs); err != nil {
		t.Fatal(err)
	}
	p, ok := procs[strconv.Itoa(w.pid())]
	if !ok || len(procs) != 1 {
		t.Fatalf("processes %s, want only %d", mm["processes"], w.pid())
	}
	for _, k := range []string{"process_id", "sample_count", "current_size", "current_shared_size", "current_private_size",
		"maximum_size", "maximum_size_limit", "threshold_size", "increase_count", "increase_limit", "resident_size", "service"} {
		if v, ok := p[k]; !ok || string(v) == "null" {
			t.Errorf("process entry lacks %q: %v", k, p)
		}
	}
	if string(p["threshold_size"]) != strconv.Itoa(20*mib) || string(p["service"]) != `"calm"` || string(p["increase_count"]) != "0" {
		t.Errorf("process entry %v", p)
	}
	var n int
	_ = json.Unmarshal(p["sample_count"], &n)
	var private, limit uint64
	_ = json.Unmarshal(p["current_private_size"], &private)
	_ = json.Unmarshal(p["maximum_size_limit"], &limit)
	if n < 3 || private < 10*mib || limit != (b+100)*mib {
		t.Errorf("sample_count %d, private %d, limit %d: %v", n, private, limit, p)
	}
}

// stopRecorder is a stop seam recording the stops instead of signalling.
type stopRecorder struct {
	mu   sync.Mutex
	pids []int
}

func (r *stopRecorder) stop(ctx context.Context, pid int, grace time.Duration) (stopOutcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pids = append(r.pids, pid)
	return outcomeInterrupted, nil
}

func (r *stopRecorder) stopped() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.pids...)
}

func TestFreeSizeMinimumStopsLargestUntilEnough(t *testing.T) {
	rec := &stopRecorder{}
	logger, logs := testLogger()
	var low atomic.Bool // short of memory once both workers are there
	m := NewMemory(fast(MemoryOptions{
		FreeSizeMinimum: 130 * mib,
		Logger:          logger,
		stop:            rec.stop,
		host: func() (procmetrics.HostMemory, error) {
			if !low.Load() {
				return procmetrics.HostMemory{Total: 1 << 30, Free: 900 * mib, Source: "test"}, nil
			}
			return procmetrics.HostMemory{Total: 1 << 30, Free: 100 * mib, Source: "test"}, nil
		},
	}))
	srv := startServer(t, m)
	startWorker(t, srv.path, "small", growth{start: 20})
	big := startWorker(t, srv.path, "big", growth{start: 50})
	waitFor(t, "both workers sampled", func() bool {
		n := 0
		for _, p := range m.Snapshot().Processes {
			if p.CurrentPrivateSize != nil {
				n++
			}
		}
		return n == 2
	})
	low.Store(true)
	waitFor(t, "a stop", func() bool { return len(rec.stopped()) > 0 })
	time.Sleep(time.Second) // more polls: the estimate is above the minimum now
	if got := rec.stopped(); len(got) != 1 || got[0] != big.pid() {
		t.Fatalf("stopped %v, want only the big worker %d\nlogs:\n%s", got, big.pid(), logs)
	}
	s := m.Snapshot()
	if s.Kills[ReasonFreeSize] != 1 || s.FreeSize == nil || *s.FreeSize != 100*mib {
		t.Errorf("kills %v, free size %v", s.Kills, s.FreeSize)
	}
	if !strings.Contains(logs.String(), "reason=free_size_minimum") || !strings.Contains(logs.String(), "free_size_minimum="+strconv.Itoa(130*mib)) {
		t.Errorf("logs lack the reason and figures:\n%s", logs)
	}
}

func TestHostMemoryErrorIsLoggedAndLoopGoesOn(t *testing.T) {
	logger, logs := testLogger()
	calls := make(chan struct{}, 100)
	m := NewMemory(fast(MemoryOptions{
		FreeSizeMinimum: 1,
		Logger:          logger,
		host: func() (procmetrics.HostMemory, error) {
			select {
			case calls <- struct{}{}:
			default:
			}
			return procmetrics.HostMemory{}, errors.New("meminfo unreadable")
		},
	}))
	srv := startServer(t, m)
	startWorker(t, srv.path, "w", growth{})
	for range 3 {
		select {
		case <-calls:
		case <-time.After(20 * time.Second):
			t.Fatal("the loop stopped calling the host source")
		}
	}
	waitFor(t, "the error to be logged", func() bool { return strings.Contains(logs.String(), "meminfo unreadable") })
}

func TestMemoryOptionsValidate(t *testing.T) {
	for _, o := range []MemoryOptions{
		{Interval: -1},
		{PollInterval: -time.Second},
		{IncreaseLimit: -1},
		{MemorySample: &SampleOptions{Timeout: -1}},
		{Services: map[string]ServiceLimits{"web": {GracefulStop: -1}}},
	} {
		m := NewMemory(o)
		err := m.Run(context.Background())
		if !errors.Is(err, ErrOptions) {
			t.Errorf("Run with %+v: %v, want ErrOptions", o, err)
		}
	}
	if err := (MemoryOptions{}).Validate(); err != nil {
		t.Errorf("zero options: %v", err)
	}
	err := MemoryOptions{Services: map[string]ServiceLimits{"web": {IncreaseLimit: -2}}}.Validate()
	if err == nil || !strings.Contains(err.Error(), `"web"`) || !strings.Contains(err.Error(), "increase_limit") {
		t.Errorf("error %v does not name the service and option", err)
	}
}

func TestSampleFallsBackToMemoryDump(t *testing.T) {
	b := base(t)
	dump := t.TempDir()
	logger, logs := testLogger()
	m := NewMemory(fast(MemoryOptions{
		MaximumSizeLimit: 1 << 40, // only the service's limit applies
		Services:         map[string]ServiceLimits{"dumponly": {MaximumSizeLimit: (b + 20) * mib}},
		MemorySample:     &SampleOptions{Duration: 50 * time.Millisecond},
		DumpDirectory:    dump,
		Logger:           logger,
	}))
	srv := startServer(t, m)
	w := startWorker(t, srv.path, "dumponly", growth{start: 40})
	if sig := w.exited(t, 30*time.Second); sig != syscall.SIGINT {
		t.Fatalf("worker ended with signal %v, want SIGINT\nlogs:\n%s", sig, logs)
	}
	waitFor(t, "the stop to be logged", func() bool { return strings.Contains(logs.String(), "process stopped") })
	files, _ := filepath.Glob(filepath.Join(dump, "dumponly-*-memory_dump.text"))
	if len(files) != 1 {
		t.Fatalf("dump files %v, want one memory_dump\nlogs:\n%s", files, logs)
	}
	if data, _ := os.ReadFile(files[0]); string(data) != "heap dump" {
		t.Errorf("dump holds %q", data)
	}
	if !strings.Contains(logs.String(), "memory_sample failed, asking for memory_dump") {
		t.Errorf("logs lack the fallback:\n%s", logs)
	}
}

func TestNeverTracksInitSelfOrController(t *testing.T) {
	m := NewMemory(fast(MemoryOptions{}))
	srv := startServer(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, state := range []map[string]any{
		{"process_id": 1},
		{"process_id": os.Getpid()},
		{"process_id": os.Getpid() + 1, "role": "controller"},
		{"name": "no pid"},
	} {
		c, err := supervisor.Dial(ctx, srv.path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Register(ctx, state); err != nil {
			t.Fatal(err)
		}
	}
	// One poll at least after the registrations reached the monitor.
	w := startWorker(t, srv.path, "w", growth{})
	waitFor(t, "the worker tracked", func() bool { return len(m.Snapshot().Processes) > 0 })
	time.Sleep(200 * time.Millisecond)
	s := m.Snapshot()
	if len(s.Processes) != 1 {
		t.Errorf("processes %v, want only the worker %d", s.Processes, w.pid())
	}
}

func TestSeveralConnectionsPerProcess(t *testing.T) {
	m := NewMemory(fast(MemoryOptions{}))
	srv := startServer(t, m)
	sleeper := startSleep(t)
	pid := strconv.Itoa(sleeper.Process.Pid)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var clients []*supervisor.Client
	for range 2 {
		c, err := supervisor.Dial(ctx, srv.path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Register(ctx, map[string]any{"process_id": sleeper.Process.Pid, "name": "pair"}); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	waitFor(t, "the process sampled", func() bool {
		p, ok := m.Snapshot().Processes[pid]
		return ok && p.SampleCount > 0
	})
	if n := len(m.Snapshot().Processes); n != 1 {
		t.Fatalf("%d processes tracked, want 1", n)
	}
	clients[0].Close()
	time.Sleep(500 * time.Millisecond) // checks pass: one connection is left
	p, ok := m.Snapshot().Processes[pid]
	if !ok {
		t.Fatal("process forgotten while a connection is left")
	}
	before := p.SampleCount
	waitFor(t, "another sample", func() bool { return m.Snapshot().Processes[pid].SampleCount > before })
	clients[1].Close()
	waitFor(t, "the process forgotten", func() bool { return len(m.Snapshot().Processes) == 0 })
}
