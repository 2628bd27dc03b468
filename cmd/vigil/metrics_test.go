package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/testutil"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeOnce gets url and parses the text format; it fails the test if
// the exposition does not parse.
func scrapeOnce(t *testing.T, url string) (map[string]*dto.MetricFamily, string, error) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != 200 {
		return nil, "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, b)
	}
	return fams, string(b), nil
}

// sample returns the value of the sample of a family whose labels include
// want.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, lp := range m.Label {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
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

// TestRunServesMetrics: `vigil run` with [metrics] and both monitors
// serves /metrics from its supervisor; the exposition parses, a worker
// killed from outside and one restarted by an operator move their
// counters, and no label carries a pid.
func TestRunServesMetrics(t *testing.T) {
	port := testutil.FreePorts(t, 1)
	r := startRun(t, workerConfig(t, 2, "")+fmt.Sprintf(`
[supervisor.monitors.process]
interval = "1s"

[supervisor.monitors.memory]
interval = "1s"

[metrics]
listen = "127.0.0.1:%d"
`, port))
	first := r.waitTree("two workers", allUp(2))
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	web0 := map[string]string{"service": "web", "worker": "web.0"}
	web1 := map[string]string{"service": "web", "worker": "web.1"}

	// waitMetrics scrapes until cond holds.
	waitMetrics := func(what string, cond func(map[string]*dto.MetricFamily) bool) (map[string]*dto.MetricFamily, string) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			fams, text, err := scrapeOnce(t, url)
			if err == nil && cond(fams) {
				return fams, text
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (last error %v):\n%s", what, err, text)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	is := func(name string, labels map[string]string, want float64) func(map[string]*dto.MetricFamily) bool {
		return func(f map[string]*dto.MetricFamily) bool {
			v, ok := sample(f, name, labels)
			return ok && v == want
		}
	}
	fams, _ := waitMetrics("both workers ready, with memory figures", func(f map[string]*dto.MetricFamily) bool {
		_, mem := sample(f, "vigil_worker_private_memory_bytes", web1)
		return is("vigil_service_ready_workers", map[string]string{"service": "web"}, 2)(f) && mem
	})
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vigil_service_desired_workers", map[string]string{"service": "web"}, 2},
		{"vigil_service_running_workers", map[string]string{"service": "supervisor"}, 1},
		{"vigil_worker_up", web0, 1},
		{"vigil_worker_ready", web1, 1},
		{"vigil_worker_restarts_total", web0, 0},
		{"vigil_metrics_source_up", map[string]string{"source": "controller"}, 1},
		{"vigil_metrics_source_up", map[string]string{"source": "memory_monitor"}, 1},
		{"vigil_metrics_source_up", map[string]string{"source": "process_monitor"}, 1},
	} {
		if v, ok := sample(fams, tc.name, tc.labels); !ok || v != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}
	if n, ok := sample(fams, "vigil_service_ready_latency_seconds", map[string]string{"service": "web"}); !ok || n != 2 {
		t.Errorf("ready latency of web counts %v (%v), want 2", n, ok)
	}
	failuresBefore, _ := sample(fams, "vigil_service_failures_total", map[string]string{"service": "web"})

	// A worker killed from outside: restarted, counted as a SIGKILL exit
	// (or, if the kernel's OOM killer struck meanwhile, as oom).
	pids := first.pids("web", "ready")
	var victim int
	for _, c := range first.children {
		if c.Service == "web" && c.Instance == 0 {
			victim = c.PID
		}
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	fams, _ = waitMetrics("web.0 restarted and its exit counted", func(f map[string]*dto.MetricFamily) bool {
		sig, _ := sample(f, "vigil_worker_exits_total", map[string]string{"service": "web", "worker": "web.0", "reason": "signal", "signal": "SIGKILL"})
		oom, _ := sample(f, "vigil_worker_exits_total", map[string]string{"service": "web", "worker": "web.0", "reason": "oom"})
		return sig+oom == 1 && is("vigil_worker_restarts_total", web0, 1)(f) && is("vigil_worker_ready", web0, 1)(f)
	})
	if v, _ := sample(fams, "vigil_service_failures_total", map[string]string{"service": "web"}); v != failuresBefore+1 {
		t.Errorf("failures of web %v, want %v", v, failuresBefore+1)
	}
	if v, ok := sample(fams, "vigil_worker_restarts_total", web1); !ok || v != 0 {
		t.Errorf("web.1 restarts %v (%v), want 0", v, ok)
	}

	// An operator's restart: the old process counted as stopped.
	if out, errOut, code := opRun(t, nil, "restart", "--socket", r.socket, "web.1"); code != 0 {
		t.Fatalf("vigil restart web.1: exit %d\n%s%s", code, out, errOut)
	}
	fams, text := waitMetrics("web.1's old process counted as stopped", func(f map[string]*dto.MetricFamily) bool {
		return is("vigil_worker_exits_total", map[string]string{"service": "web", "worker": "web.1", "reason": "stopped"}, 1)(f) &&
			is("vigil_worker_restarts_total", web1, 1)(f)
	})
	if v, ok := sample(fams, "vigil_service_restarts_total", map[string]string{"service": "web"}); !ok || v != 2 {
		t.Errorf("restarts of web %v (%v), want 2", v, ok)
	}
	if v, ok := sample(fams, "vigil_supervisor_calls_total", map[string]string{"operation": "forward", "outcome": "ok"}); !ok || v < 1 {
		t.Errorf("forwarded calls %v (%v), want the restart's", v, ok)
	}

	// No label carries a pid: not by name, not by value.
	last, _ := r.status()
	seen := map[string]bool{}
	for _, p := range append(append(pids, first.pids(SupervisorService, "")...), last.pids("web", "")...) {
		seen[strconv.Itoa(p)] = true
	}
	for name, mf := range fams {
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if n := lp.GetName(); strings.Contains(n, "pid") || n == "connection_id" || n == "process_id" {
					t.Errorf("%s has a label %s", name, n)
				}
				if seen[lp.GetValue()] && lp.GetName() != "code" {
					t.Errorf("%s has a label %s=%s, a pid", name, lp.GetName(), lp.GetValue())
				}
			}
		}
	}
	if t.Failed() {
		t.Logf("last scrape:\n%s", text)
	}
}
