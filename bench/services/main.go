//go:build linux

// Command services measures `vigil run` with services one at a time:
//
//   - probes: N workers (default 1,000) that know nothing of vigil, each
//     with an http readiness probe and an http health probe every second
//     (the ports are served by one helper process of this command, so that
//     the workers are cheap `sleep`s and the figure is the controller's
//     own), and the controller's CPU, threads and wake-ups over a window
//     (default 60 s);
//
//   - reload: ten services of 100 workers; one service's environment
//     changes and vigil reload applies it: the time until its replacements
//     are all ready, and whether any of the other 900 pids changed.
//
//     go run ./bench/services
//     go run ./bench/services -vigil bin/vigil -workers 1000 -window 60s
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	var (
		vigil   = flag.String("vigil", "", "the vigil binary (default: build ./cmd/vigil)")
		workers = flag.Int("workers", 1000, "workers with probes")
		window  = flag.Duration("window", 60*time.Second, "how long the controller is measured with its probes running")
		only    = flag.String("only", "", "probes or reload (default: both)")
	)
	flag.Parse()
	if err := run(*vigil, *workers, *window, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench/services:", err)
		os.Exit(1)
	}
}

func run(vigil string, workers int, window time.Duration, only string) error {
	dir, err := os.MkdirTemp("", "vigil-bench-services")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if vigil == "" {
		vigil = filepath.Join(dir, "vigil")
		cmd := exec.Command("go", "build", "-o", vigil, "./cmd/vigil")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	fmt.Printf("machine: %d CPUs; vigil %s\n", runtimeCPUs(), vigil)
	if only == "" || only == "probes" {
		if err := benchProbes(vigil, dir, workers, window); err != nil {
			return err
		}
	}
	if only == "" || only == "reload" {
		if err := benchReload(vigil, dir); err != nil {
			return err
		}
	}
	return nil
}

// vigilRun is a vigil run under measurement.
type vigilRun struct {
	cmd    *exec.Cmd
	socket string
	vigil  string
	config string
}

func startVigil(vigil, dir, toml string) (*vigilRun, error) {
	config := filepath.Join(dir, "vigil.toml")
	if err := os.WriteFile(config, []byte(toml), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(vigil, "run", "-c", config)
	cmd.Dir = dir
	devnull, _ := os.Open(os.DevNull)
	cmd.Stdout, cmd.Stderr = devnull, devnull
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &vigilRun{cmd: cmd, socket: filepath.Join(dir, "supervisor.ipc"), vigil: vigil, config: config}, nil
}

func (r *vigilRun) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
}

type row struct {
	Service  string  `json:"service"`
	Instance int     `json:"instance"`
	PID      *int    `json:"pid"`
	State    *string `json:"state"`
}

func (r *vigilRun) rows() ([]row, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, r.vigil, "status", "--socket", r.socket, "--output", "json").Output()
	if err != nil {
		return nil, err
	}
	var rows []row
	err = json.Unmarshal(out, &rows)
	return rows, err
}

// waitReady waits until n workers are ready (and as many rows).
func (r *vigilRun) waitReady(n int, timeout time.Duration) (map[string]int, error) {
	deadline := time.Now().Add(timeout)
	for {
		rows, err := r.rows()
		ready := map[string]int{}
		for _, x := range rows {
			if x.State != nil && *x.State == "ready" && x.PID != nil && x.Service != "supervisor" {
				ready[fmt.Sprintf("%s.%d", x.Service, x.Instance)] = *x.PID
			}
		}
		if err == nil && len(ready) == n && len(rows) == n+1 {
			return ready, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d ready after %v (%v)", len(ready), n, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// portFarm serves GET / with 200 on n ports from base, in this process.
func portFarm(n int) (base int, stop func(), err error) {
	for try := 0; try < 20; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, nil, err
		}
		base = l.Addr().(*net.TCPAddr).Port
		l.Close()
		if base+n > 65000 {
			continue
		}
		var ls []net.Listener
		for i := 0; i < n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		if len(ls) < n {
			for _, l := range ls {
				l.Close()
			}
			continue
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
		for _, l := range ls {
			go srv.Serve(l)
		}
		return base, func() { srv.Close() }, nil
	}
	return 0, nil, fmt.Errorf("no %d free ports in a row", n)
}

func benchProbes(vigil, dir string, workers int, window time.Duration) error {
	base, stopFarm, err := portFarm(workers)
	if err != nil {
		return err
	}
	defer stopFarm()
	toml := fmt.Sprintf(`
[services.w]
command = ["sleep", "100000"]
count = %d
port = %d
supervised = false
graceful_stop = "1s"
readiness = { http = "http://127.0.0.1:${port}/", interval = "1s" }
health = { http = "http://127.0.0.1:${port}/", interval = "1s" }
`, workers, base)
	r, err := startVigil(vigil, dir, toml)
	if err != nil {
		return err
	}
	defer r.stop()
	start := time.Now()
	if _, err := r.waitReady(workers, 5*time.Minute); err != nil {
		return err
	}
	fmt.Printf("probes: %d workers, http readiness and health probes every 1s: all ready after %v\n", workers, time.Since(start).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	pid := r.cmd.Process.Pid
	c0, s0 := cpuNanos(pid), switches(pid)
	t0 := time.Now()
	time.Sleep(window)
	secs := time.Since(t0).Seconds()
	c1, s1 := cpuNanos(pid), switches(pid)
	fmt.Printf("probes: controller over %v: CPU %.2f%% of a core, %.0f wake-ups/s, %d threads, RSS %.1f MiB\n",
		window, float64(c1-c0)/1e9/secs*100, float64(s1-s0)/secs, threads(pid), rssMiB(pid))
	return nil
}

func benchReload(vigil, dir string) error {
	var b strings.Builder
	gen := func(g int) string {
		b.Reset()
		for i := 0; i < 10; i++ {
			fmt.Fprintf(&b, "[services.s%d]\ncommand = [\"sleep\", \"100000\"]\ncount = 100\nreadiness = \"started\"\nsupervised = false\ngraceful_stop = \"1s\"\n", i)
			if i == 3 {
				fmt.Fprintf(&b, "env = { GENERATION = \"%d\" }\n", g)
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	r, err := startVigil(vigil, dir, gen(1))
	if err != nil {
		return err
	}
	defer r.stop()
	before, err := r.waitReady(1000, 5*time.Minute)
	if err != nil {
		return err
	}
	if err := os.WriteFile(r.config, []byte(gen(2)), 0o644); err != nil {
		return err
	}
	start := time.Now()
	out, err := exec.Command(vigil, "reload", "--socket", r.socket).CombinedOutput()
	if err != nil {
		// An older vigil's reload only signals: wait for the change.
		if !bytes.Contains(out, []byte("sent SIGHUP")) {
			return fmt.Errorf("vigil reload: %v: %s", err, out)
		}
	}
	var after map[string]int
	deadline := time.Now().Add(2 * time.Minute)
	for {
		after, err = r.waitReady(1000, time.Minute)
		if err != nil {
			return err
		}
		changed := 0
		for k, pid := range after {
			if strings.HasPrefix(k, "s3.") && before[k] != pid {
				changed++
			}
		}
		if changed == 100 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of s3's workers replaced", changed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	others := 0
	for k, pid := range after {
		if !strings.HasPrefix(k, "s3.") && before[k] != pid {
			others++
		}
	}
	fmt.Printf("reload: one service of ten (100 workers each) changed: its replacements all ready %v after vigil reload began; %d of the other 900 pids changed\n",
		took.Round(time.Millisecond), others)
	return nil
}

func runtimeCPUs() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

// cpuNanos is the CPU time of every thread of pid (schedstat).
func cpuNanos(pid int) int64 {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var n int64
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if f := strings.Fields(string(b)); len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			n += v
		}
	}
	return n
}

func statusField(pid int, key string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

func threads(pid int) int    { return statusField(pid, "Threads") }
func rssMiB(pid int) float64 { return float64(statusField(pid, "VmRSS")) / 1024 }

// switches counts the context switches of every thread of pid.
func switches(pid int) int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	n := 0
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				x, _ := strconv.Atoi(strings.TrimSpace(v))
				n += x
			} else if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
				x, _ := strconv.Atoi(strings.TrimSpace(v))
				n += x
			}
		}
	}
	return n
}
