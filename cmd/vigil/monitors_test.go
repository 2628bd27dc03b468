package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/worker"
)

func init() {
	// grow-worker: a supervised worker that, the first time it runs (no
	// GROW_MARK file yet), grows its private memory by 8 MiB every 50 ms
	// after saying ready; its replacements stay small.
	helpers["grow-worker"] = func(args []string) int {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		n, _ := worker.NewNotifier(os.Getenv, nil)
		w, err := worker.Start(ctx, worker.Options{MinPause: 20 * time.Millisecond, MaxPause: 200 * time.Millisecond})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer w.Wait()
		_ = n.Ready()
		mark := os.Getenv("GROW_MARK")
		grow := false
		if f, err := os.OpenFile(mark, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			f.Close()
			grow = true
		}
		var hoard [][]byte
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return 0
			case <-tick.C:
				if grow {
					b := make([]byte, 8<<20)
					for i := 0; i < len(b); i += 4096 {
						b[i] = 1
					}
					hoard = append(hoard, b)
					runtime.KeepAlive(hoard) // held, and seen to be, until the end
				}
			}
		}
	}
}

// TestRunMemoryLimit: under vigil run, a worker that grows past
// maximum_size_limit is sampled, killed and replaced; status shows the kill.
func TestRunMemoryLimit(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dumps := t.TempDir()
	mark := filepath.Join(t.TempDir(), "grown")
	r := startRun(t, fmt.Sprintf(`
[supervisor.monitors.memory]
maximum_size_limit = "96MiB"
memory_sample = { duration = "200ms", timeout = "5s" }
dump_directory = %q

[supervisor.monitors.process]
interval = "1s"

[services.web]
command = [%q]
count = 1
graceful_stop = "2s"
restart_delay = "20ms"
env = { %s = "grow-worker", GROW_MARK = %q, GORACE = "atexit_sleep_ms=0" }
`, dumps, exe, helperEnv, mark))
	tr := r.waitTree("the worker", allUp(1))
	first := tr.pids("web", "")[0]
	r.waitTree("the grown worker replaced", func(tr tree) bool {
		return allUp(1)(tr) && !slices.Contains(tr.pids("web", ""), first)
	})
	entries, err := os.ReadDir(dumps)
	if err != nil || len(entries) == 0 {
		t.Fatalf("no sample kept in the dump directory: %v", err)
	}
	info, err := entries[0].Info()
	if err != nil || info.Mode().Perm() != 0o600 || info.Size() == 0 {
		t.Errorf("sample %s: %v, mode %v", entries[0].Name(), err, info.Mode())
	}
	// The kill is counted in status, and both monitors report.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := r.rawStatus(ctx)
	var mem struct {
		Kills map[string]int `json:"kills"`
	}
	if err := json.Unmarshal(st.Part("memory_monitor"), &mem); err != nil || mem.Kills["maximum_size_limit"] != 1 {
		t.Errorf("memory_monitor kills: %s (%v)", st.Part("memory_monitor"), err)
	}
	if st.Part("process_monitor") == nil {
		t.Errorf("no process_monitor part in status")
	}
	if !containsAll(r.out.String(), "maximum_size_limit", fmt.Sprint(first)) {
		t.Errorf("the kill is not logged with its reason and pid")
	}
}
