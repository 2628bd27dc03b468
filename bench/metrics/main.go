//go:build linux

// Command metrics measures the supervisor's /metrics with a real fleet:
// `vigil run` with N workers (default 1,000; bench/metrics/worker, which
// registers with the supervisor) and both monitors on. It times scrapes
// (the Prometheus text format, gzipped as Prometheus asks for it, and
// OpenMetrics) and counts their bytes, then times the status call
// (`vigil status`'s) alone, while a scraper scrapes back to back, and
// while it scrapes every second. With -worker-metrics it does it again with
// [metrics] workers = true, every worker asked for its own metrics at each
// scrape. With -supervisord PATH (the Go supervisord, github.com/ochinchina/supervisord)
// it times that one's /metrics with -programs programs beside it.
//
//	go run ./bench/metrics                        # about 2 minutes
//	go run ./bench/metrics -workers 100 -scrapes 50
//	go run ./bench/metrics -supervisord ~/go/bin/supervisord
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

type config struct {
	vigil, worker, supervisord string
	workers, scrapes, statuses int
	programs                   int
	workerMetrics, verbose     bool
}

func main() {
	var c config
	flag.StringVar(&c.vigil, "vigil", "", "the vigil binary (default: build ./cmd/vigil)")
	flag.StringVar(&c.worker, "worker", "", "the worker binary (default: build ./bench/metrics/worker)")
	flag.IntVar(&c.workers, "workers", 1000, "workers of the fleet")
	flag.IntVar(&c.scrapes, "scrapes", 100, "timed scrapes of each kind")
	flag.IntVar(&c.statuses, "status", 100, "timed status calls of each kind")
	flag.BoolVar(&c.workerMetrics, "worker-metrics", false, "also measure with [metrics] workers = true")
	flag.StringVar(&c.supervisord, "supervisord", "", "the Go supervisord binary, to measure its /metrics beside vigil's")
	flag.IntVar(&c.programs, "programs", 100, "programs of the Go supervisord")
	flag.BoolVar(&c.verbose, "v", false, "show vigil's output")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench/metrics:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	dir, err := os.MkdirTemp("", "vigil-bench-metrics-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if c.vigil == "" {
		c.vigil = filepath.Join(dir, "vigil")
		if err := build(c.vigil, "./cmd/vigil"); err != nil {
			return err
		}
	}
	if c.worker == "" {
		c.worker = filepath.Join(dir, "worker")
		if err := build(c.worker, "./bench/metrics/worker"); err != nil {
			return err
		}
	}
	fmt.Printf("bench/metrics: %d workers, both monitors on, %d scrapes and %d status calls of each kind; medians (p95)\n",
		c.workers, c.scrapes, c.statuses)
	if err := fleet(c, dir, false); err != nil {
		return err
	}
	if c.workerMetrics {
		if err := fleet(c, dir, true); err != nil {
			return err
		}
	}
	if c.supervisord != "" {
		return supervisord(c, dir)
	}
	return nil
}

func build(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s: %w", pkg, err)
	}
	return nil
}

// freePort is a loopback TCP port free now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// fleet runs vigil with the workers and measures.
func fleet(c config, dir string, workerMetrics bool) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	socket := filepath.Join(dir, "s.ipc")
	conf := filepath.Join(dir, "vigil.toml")
	toml := fmt.Sprintf(`
[supervisor]
socket = %q

[supervisor.monitors.process]
interval = "10s"

[supervisor.monitors.memory]
interval = "10s"

[metrics]
listen = "127.0.0.1:%d"
workers = %v
worker_timeout = "10s"

[services.bench]
command = [%q]
count = %d
startup_timeout = "300s"
graceful_stop = "20s"
env = { GOMAXPROCS = "1", GOGC = "400" }
`, socket, port, workerMetrics, c.worker, c.workers)
	if err := os.WriteFile(conf, []byte(toml), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(c.vigil, "run", "-c", conf)
	if c.verbose {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer stopRun(cmd)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableCompression: true}}

	began := time.Now()
	conds := []struct{ what, text string }{
		{"workers ready", fmt.Sprintf("vigil_service_ready_workers{service=\"bench\"} %d\n", c.workers)},
		{"workers registered", fmt.Sprintf("vigil_supervisor_registrations %d\n", c.workers+1)}, // and the controller
	}
	for lastSaid := began; ; {
		body, _, _, err := scrape(client, url, "", "")
		missing := ""
		for _, cond := range conds {
			if !strings.Contains(body, cond.text) {
				missing = cond.what
			}
		}
		if n := strings.Count(body, "vigil_worker_private_memory_bytes{service=\"bench\""); missing == "" && n != c.workers {
			missing = fmt.Sprintf("the process monitor's figures (%d of %d)", n, c.workers)
		}
		if err == nil && missing == "" {
			break
		}
		if time.Since(began) > 10*time.Minute {
			return fmt.Errorf("the fleet is not ready after 10 minutes: %s (last error %v)", missing, err)
		}
		if time.Since(lastSaid) > 30*time.Second {
			fmt.Printf("  waiting for %s (%v)\n", missing, time.Since(began).Round(time.Second))
			lastSaid = time.Now()
		}
		time.Sleep(time.Second)
	}
	fmt.Printf("\n%d workers ready, registered, and captured by the process monitor after %v", c.workers, time.Since(began).Round(time.Second))
	if workerMetrics {
		fmt.Printf("; [metrics] workers = true: every worker asked for its metrics at each scrape")
	}
	fmt.Println()
	time.Sleep(3 * time.Second) // the start-up's work settles

	// Scrapes.
	for range 5 {
		if _, _, _, err := scrape(client, url, "", ""); err != nil {
			return err
		}
	}
	kinds := []struct{ name, accept, encoding string }{
		{"text format, identity", "", "identity"},
		{"text format, gzip (as Prometheus asks)", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1", "gzip"},
		{"OpenMetrics, identity", "application/openmetrics-text;version=1.0.0", "identity"},
	}
	for _, k := range kinds {
		var times []time.Duration
		var size, raw int
		var series int
		for range c.scrapes {
			start := time.Now()
			body, n, ct, err := scrape(client, url, k.accept, k.encoding)
			times = append(times, time.Since(start))
			if err != nil {
				return err
			}
			size, raw = n, len(body)
			series = samples(body)
			_ = ct
		}
		fmt.Printf("  scrape, %-40s %8v (%v)   %s on the wire, %s of text, %d samples\n", k.name+":", median(times), p95(times),
			bytesString(size), bytesString(raw), series)
	}

	// Status calls: alone, beside back-to-back scrapes, beside a scrape a second.
	alone, err := statusCalls(socket, c.statuses)
	if err != nil {
		return err
	}
	fmt.Printf("  status call, alone:                                  %8v (%v)\n", median(alone), p95(alone))
	for _, s := range []struct {
		name  string
		every time.Duration
	}{{"beside back-to-back scrapes", 0}, {"beside a scrape a second", time.Second}} {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var scrapesDone int
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, _, _, err := scrape(client, url, "", "gzip"); err == nil {
					scrapesDone++
				}
				if s.every > 0 {
					select {
					case <-time.After(s.every):
					case <-ctx.Done():
					}
				}
			}
		})
		times, err := statusCalls(socket, c.statuses)
		cancel()
		wg.Wait()
		if err != nil {
			return err
		}
		fmt.Printf("  status call, %-40s %8v (%v)   (%d scrapes meanwhile)\n", s.name+":", median(times), p95(times), scrapesDone)
	}
	return nil
}

// scrape gets url; it returns the body (decompressed), its size on the
// wire, and its content type.
func scrape(client *http.Client, url, accept, encoding string) (string, int, string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return "", 0, "", err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, "", err
	}
	defer resp.Body.Close()
	wire, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, "", err
	}
	if resp.StatusCode != 200 {
		return "", 0, "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body := wire
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(wire))
		if err != nil {
			return "", 0, "", err
		}
		if body, err = io.ReadAll(zr); err != nil {
			return "", 0, "", err
		}
	}
	return string(body), len(wire), resp.Header.Get("Content-Type"), nil
}

// samples counts the exposition's sample lines.
func samples(body string) int {
	n := 0
	for _, l := range strings.Split(body, "\n") {
		if l != "" && l[0] != '#' {
			n++
		}
	}
	return n
}

// statusCalls times n status calls on one connection, as vigil status
// makes them (every reply read, nothing decoded).
func statusCalls(socket string, n int) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := supervisor.Dial(ctx, socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var times []time.Duration
	for i := range n + 3 {
		start := time.Now()
		parts := 0
		_, err := c.Conn().Call(ctx, "status", nil, func(*rpc.Message) error { parts++; return nil })
		if err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
		if parts < 3 {
			return nil, fmt.Errorf("status: %d parts, want the two monitors' and the controller's", parts)
		}
		if i >= 3 { // the first ones warm up
			times = append(times, time.Since(start))
		}
	}
	return times, nil
}

// stopRun stops vigil run and waits for it.
func stopRun(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
	}
}

// supervisord measures the Go supervisord's /metrics with c.programs
// programs.
func supervisord(c config, dir string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "[supervisord]\nnodaemon=true\nlogfile=%s\npidfile=%s\n\n[inet_http_server]\nport=127.0.0.1:%d\n\n", filepath.Join(dir, "supervisord.log"), filepath.Join(dir, "supervisord.pid"), port)
	for i := range c.programs {
		fmt.Fprintf(&conf, "[program:p%d]\ncommand=/bin/sleep 100000\nautostart=true\nautorestart=true\nstdout_logfile=/dev/null\nstderr_logfile=/dev/null\n\n", i)
	}
	path := filepath.Join(dir, "supervisord.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(c.supervisord, "-c", path)
	cmd.Dir = dir // whatever else it writes stays out of the caller's directory
	if c.verbose {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	began := time.Now()
	for {
		body, _, _, err := scrape(client, url, "", "")
		if err == nil && running(body) >= c.programs {
			break
		}
		if time.Since(began) > 2*time.Minute {
			return fmt.Errorf("supervisord: %d programs not running after 2 minutes (last error %v, %d running)", c.programs, err, running(body))
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	fmt.Printf("\nthe Go supervisord (%s), %d programs running\n", c.supervisord, c.programs)
	for _, k := range []struct{ name, encoding string }{{"text format, identity", "identity"}, {"text format, gzip", "gzip"}} {
		var times []time.Duration
		var size, raw, series int
		for range c.scrapes {
			start := time.Now()
			body, n, _, err := scrape(client, url, "", k.encoding)
			times = append(times, time.Since(start))
			if err != nil {
				return err
			}
			size, raw, series = n, len(body), samples(body)
		}
		fmt.Printf("  scrape, %-40s %8v (%v)   %s on the wire, %s of text, %d samples\n", k.name+":", median(times), p95(times),
			bytesString(size), bytesString(raw), series)
	}
	return nil
}

// running counts the programs the supervisord's metrics say are running.
func running(body string) int {
	n := 0
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "node_supervisord_up{") || strings.HasPrefix(l, "supervisord_up{") {
			if strings.HasSuffix(l, " 1") {
				n++
			}
		}
	}
	return n
}

func median(d []time.Duration) time.Duration { return quantile(d, 0.5) }
func p95(d []time.Duration) time.Duration    { return quantile(d, 0.95) }

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(int(q*float64(len(s))), len(s)-1)].Round(10 * time.Microsecond)
}

func bytesString(n int) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.Itoa(n) + " B"
}
