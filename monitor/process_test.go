package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startSleep starts `sleep 1000`, killed and reaped when the test ends.
func startSleep(t testing.TB) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func TestProcessMonitorCapturesAndLogsTheTree(t *testing.T) {
	a, b := startSleep(t), startSleep(t)
	logger, logs := testLogger()
	p := NewProcess(ProcessOptions{PPID: os.Getpid(), Interval: 200 * time.Millisecond, Logger: logger})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	pids := []string{strconv.Itoa(a.Process.Pid), strconv.Itoa(b.Process.Pid)}
	// Two captures at least, so utilisation is over an interval.
	waitFor(t, "two captures logged", func() bool {
		return strings.Count(logs.String(), "process_id="+pids[0]+" ") >= 2
	})
	v, err := p.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		PM struct {
			PPID       int                                   `json:"ppid"`
			Metrics    map[string]map[string]json.RawMessage `json:"metrics"`
			CapturedAt time.Time                             `json:"captured_at"`
		} `json:"process_monitor"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.PM.PPID != os.Getpid() {
		t.Errorf("ppid %d, want %d", st.PM.PPID, os.Getpid())
	}
	if age := time.Since(st.PM.CapturedAt); age < 0 || age > 10*time.Second {
		t.Errorf("captured_at %v: %v ago", st.PM.CapturedAt, age)
	}
	for _, pid := range append(pids, strconv.Itoa(os.Getpid())) {
		m, ok := st.PM.Metrics[pid]
		if !ok {
			t.Fatalf("metrics lack %s: %s", pid, raw)
		}
		for _, k := range []string{"process_id", "parent_process_id", "process_group_id", "processor_utilization", "total_size",
			"virtual_size", "resident_size", "processor_time", "elapsed_time", "command", "memory"} {
			if _, ok := m[k]; !ok {
				t.Errorf("metrics of %s lack %q", pid, k)
			}
		}
	}
	if cmd := string(st.PM.Metrics[pids[0]]["command"]); cmd != `"sleep 1000"` {
		t.Errorf("command %s", cmd)
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "process_id="+pids[1]+" ") {
			line = l
		}
	}
	for _, want := range []string{`msg="process metrics"`, "parent_process_id=" + strconv.Itoa(os.Getpid()), `command="sleep 1000"`,
		// A process's first capture reports its utilisation over its life so
		// far, which is not 0 for one that has just started: only the key.
		"processor_utilization=", "private_dirty_size="} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %q: %s", want, line)
		}
	}
}

func TestProcessMonitorRefusesInit(t *testing.T) {
	p := NewProcess(ProcessOptions{PPID: 1})
	if err := p.Run(context.Background()); !errors.Is(err, ErrInitPPID) {
		t.Errorf("Run with ppid 1: %v, want ErrInitPPID", err)
	}
	if _, err := p.Status(context.Background()); !errors.Is(err, ErrInitPPID) {
		t.Errorf("Status with ppid 1: %v, want ErrInitPPID", err)
	}
	if err := NewProcess(ProcessOptions{PPID: -3}).Run(context.Background()); !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), "-3") {
		t.Errorf("Run with ppid -3: %v", err)
	}
}

func TestProcessMonitorStatusBeforeCaptureAndMissingRoot(t *testing.T) {
	logger, logs := testLogger()
	// A pid that does not exist: each capture fails, logged, and the loop
	// goes on.
	p := NewProcess(ProcessOptions{PPID: 1 << 30, Interval: 100 * time.Millisecond, Logger: logger})
	st, err := p.Snapshot()
	if err != nil || st.PPID != 1<<30 || st.Metrics == nil || len(st.Metrics) != 0 {
		t.Fatalf("snapshot before capture: %+v, %v", st, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, "three failures logged", func() bool { return strings.Count(logs.String(), "capture failed") >= 3 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if !strings.Contains(logs.String(), "not found") {
		t.Errorf("logs lack the cause:\n%s", logs)
	}
}
