//go:build linux

// Command chaos runs `vigil run` with a few services and, for a while,
// does to it what a bad day does: it SIGKILLs random workers and the
// supervisor, kills operator commands in the middle of their call, stops
// and continues workers (SIGSTOP, SIGCONT), restarts services and reloads
// a changed configuration. After each action it waits until every worker
// is back (ready, and registered where the service is supervised), and at
// quiet moments it counts the run's processes (no orphan may pile up) and
// vigil run's zombie children. At the end it stops vigil run and checks
// that nothing of the run is left. It prints its figures and exits 1 if a
// worker was lost, a process left over or a zombie kept, or the
// controller's descriptors grew.
//
//	go run ./bench/chaos -duration 60s
//	go run ./bench/chaos -vigil bin/vigil -duration 5m -seed 7
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	vigil    string
	duration time.Duration
	seed     uint64
	recover  time.Duration
	verbose  bool
}

func main() {
	var o options
	flag.StringVar(&o.vigil, "vigil", "", "the vigil binary (default: build ./cmd/vigil)")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long to keep doing harm")
	flag.Uint64Var(&o.seed, "seed", 0, "the random seed (0: from the clock; printed)")
	flag.DurationVar(&o.recover, "recover", 30*time.Second, "how long every worker may take to come back after an action")
	flag.BoolVar(&o.verbose, "v", false, "show vigil's output")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/chaos:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// The services: how many workers each has, and whether they register.
var services = []struct {
	name       string
	count      int
	supervised bool
	// processes is how many processes of the run one worker makes.
	processes int
}{
	{"web", 3, true, 1},
	{"idle", 4, false, 1},
	{"forker", 2, false, 3},
}

func config(dir, web, idle string, generation int) string {
	return fmt.Sprintf(`[supervisor]
socket = "supervisor.ipc"

[services.web]
command = [%q]
count = 3
env = { PORT = "0", GENERATION = "%d" }
startup_timeout = "10s"
graceful_stop = "2s"
restart_delay = "50ms"
restart_delay_max = "1s"

[services.idle]
command = [%q]
count = 4
supervised = false
startup_timeout = "10s"
graceful_stop = "2s"
restart_delay = "50ms"
restart_delay_max = "1s"

[services.forker]
command = ["sh", "-c", "sleep 1000 & setsid sleep 1001 & wait"]
count = 2
readiness = "started"
supervised = false
graceful_stop = "1s"
restart_delay = "50ms"
restart_delay_max = "1s"
`, web, generation, idle)
}

// build builds a package into dir and returns the binary.
func build(dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	return out, nil
}

// row is one worker of `vigil status --output json`.
type row struct {
	Service      string  `json:"service"`
	Instance     int     `json:"instance"`
	PID          *int    `json:"pid"`
	State        *string `json:"state"`
	ConnectionID *string `json:"connection_id"`
}

type bench struct {
	o      options
	dir    string
	vigil  string
	config string
	socket string
	rng    *rand.Rand
	cmd    *exec.Cmd
	runID  string
	out    *lockedBuffer
	gen    int
	web    string
	idle   string

	actions    map[string]int
	recoveries []time.Duration
	byAction   map[string][]time.Duration
	lost       int
	extra      []string
	zombies    []string
}

func run(ctx context.Context, o options) (bool, error) {
	dir, err := os.MkdirTemp("", "vigil-chaos")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	b := &bench{o: o, dir: dir, vigil: o.vigil, actions: map[string]int{}, byAction: map[string][]time.Duration{}, out: &lockedBuffer{}}
	if b.vigil == "" {
		if b.vigil, err = build(dir, "./cmd/vigil"); err != nil {
			return false, err
		}
	}
	if b.web, err = build(dir, "./examples/quickstart/goworker"); err != nil {
		return false, err
	}
	if b.idle, err = build(dir, "./bench/controller/idleworker"); err != nil {
		return false, err
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	b.rng = rand.New(rand.NewPCG(o.seed, 0))
	b.config = filepath.Join(dir, "vigil.toml")
	b.socket = filepath.Join(dir, "supervisor.ipc")
	if err := os.WriteFile(b.config, []byte(config(dir, b.web, b.idle, b.gen)), 0o644); err != nil {
		return false, err
	}
	b.cmd = exec.Command(b.vigil, "run", "-c", b.config)
	b.cmd.Dir = dir
	b.cmd.Env = append(os.Environ(), "VIGIL_SUPERVISOR_SOCKET=")
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		return false, err
	}
	exited := make(chan error, 1)
	go func() { exited <- b.cmd.Wait() }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if o.verbose {
			fmt.Fprint(os.Stderr, b.out.String())
		}
	}()
	if _, err := b.waitBack(ctx, "start"); err != nil {
		return false, err
	}
	b.runID = b.findRunID()
	time.Sleep(time.Second)
	ctrl := b.cmd.Process.Pid
	startFigures := figuresOf(ctrl)
	supStart := figuresOf(b.supervisorPID())

	fmt.Printf("chaos: seed %d, %v, vigil run pid %d, run %s\n", o.seed, o.duration, ctrl, b.runID)
	deadline := time.Now().Add(o.duration)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		what := b.act()
		d, err := b.waitBack(ctx, what)
		if err != nil {
			b.lost++
			fmt.Printf("LOST after %s: %v\n", what, err)
			break
		}
		b.recoveries = append(b.recoveries, d)
		b.byAction[what] = append(b.byAction[what], d)
		b.quietChecks()
	}
	time.Sleep(time.Second)
	endFigures := figuresOf(ctrl)
	supEnd := figuresOf(b.supervisorPID())

	// Stop, and nothing may be left.
	stopStart := time.Now()
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			fmt.Printf("vigil run exited: %v\n", err)
		}
	case <-time.After(30 * time.Second):
		return false, errors.New("vigil run did not stop within 30s of SIGTERM")
	}
	stopTook := time.Since(stopStart)
	time.Sleep(200 * time.Millisecond)
	left := runProcesses(b.runID)

	// Figures.
	fmt.Println("actions:")
	for _, k := range slices.Sorted(maps.Keys(b.actions)) {
		d := slices.Sorted(slices.Values(b.byAction[k]))
		if len(d) == 0 {
			d = []time.Duration{0}
		}
		fmt.Printf("  %-32s %4d  back in: median %v, max %v\n", k, b.actions[k], d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}
	slices.Sort(b.recoveries)
	if n := len(b.recoveries); n > 0 {
		fmt.Printf("back to every worker ready: median %v, p95 %v, max %v (%d actions)\n",
			b.recoveries[n/2].Round(time.Millisecond), b.recoveries[n*95/100].Round(time.Millisecond), b.recoveries[n-1].Round(time.Millisecond), n)
	}
	fmt.Printf("controller: fds %d -> %d, threads %d -> %d, RSS %.1f -> %.1f MiB\n",
		startFigures.fds, endFigures.fds, startFigures.threads, endFigures.threads, startFigures.rssMiB, endFigures.rssMiB)
	fmt.Printf("supervisor (pid %d, then %d): fds %d -> %d, threads %d -> %d, RSS %.1f -> %.1f MiB\n",
		supStart.pid, supEnd.pid, supStart.fds, supEnd.fds, supStart.threads, supEnd.threads, supStart.rssMiB, supEnd.rssMiB)
	fmt.Printf("stop: %v; lost workers %d; extra processes at quiet moments %d; zombies kept %d; processes of the run left after the stop %d\n",
		stopTook.Round(time.Millisecond), b.lost, len(b.extra), len(b.zombies), len(left))
	for _, e := range b.extra {
		fmt.Println("  extra:", e)
	}
	for _, z := range b.zombies {
		fmt.Println("  zombie:", z)
	}
	for _, p := range left {
		fmt.Println("  left:", p)
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	ok := b.lost == 0 && len(b.extra) == 0 && len(b.zombies) == 0 && len(left) == 0 &&
		endFigures.fds <= startFigures.fds+2
	if !ok {
		fmt.Println("FAIL")
	} else {
		fmt.Println("PASS")
	}
	return ok, nil
}

// act does one harmful thing and says what.
func (b *bench) act() string {
	rows, _ := b.status()
	pick := func(service string) int {
		var pids []int
		for _, r := range rows {
			if r.PID != nil && *r.PID != 0 && (service == "" && r.Service != "supervisor" || r.Service == service) {
				pids = append(pids, *r.PID)
			}
		}
		if len(pids) == 0 {
			return 0
		}
		return pids[b.rng.IntN(len(pids))]
	}
	var what string
	switch n := b.rng.IntN(100); {
	case n < 35:
		what = "kill a worker"
		if pid := pick(""); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	case n < 45:
		what = "kill the supervisor"
		if pid := pick("supervisor"); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	case n < 60:
		what = "kill a command mid-call"
		cmd := exec.Command(b.vigil, "status", "--socket", b.socket)
		if b.rng.IntN(2) == 0 {
			cmd = exec.Command(b.vigil, "restart", "--socket", b.socket, "web")
		}
		if cmd.Start() == nil {
			time.Sleep(time.Duration(b.rng.IntN(30)) * time.Millisecond)
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	case n < 72:
		what = "stop and continue a worker"
		if pid := pick(""); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGSTOP)
			time.Sleep(time.Duration(200+b.rng.IntN(1800)) * time.Millisecond)
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	case n < 86:
		svc := services[b.rng.IntN(len(services))].name
		what = "restart a service"
		cmd := exec.Command(b.vigil, "restart", "--socket", b.socket, svc)
		if out, err := cmd.CombinedOutput(); err != nil && b.o.verbose {
			fmt.Fprintf(os.Stderr, "restart %s: %v: %s", svc, err, out)
		}
	default:
		what = "reload a changed configuration"
		b.gen++
		_ = os.WriteFile(b.config, []byte(config(b.dir, b.web, b.idle, b.gen)), 0o644)
		_ = b.cmd.Process.Signal(syscall.SIGHUP)
		time.Sleep(100 * time.Millisecond)
	}
	b.actions[what]++
	return what
}

// status runs vigil status --output json.
func (b *bench) status() ([]row, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, b.vigil, "status", "--socket", b.socket, "--output", "json").Output()
	if err != nil {
		return nil, err
	}
	var rows []row
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var r row
		if err := dec.Decode(&r); err != nil {
			break
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		var all []row
		if json.Unmarshal(out, &all) == nil {
			rows = all
		}
	}
	return rows, nil
}

// waitBack waits until every worker is ready (and registered where
// supervised), and returns how long it took.
func (b *bench) waitBack(ctx context.Context, after string) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(b.o.recover)
	var last []row
	for {
		rows, err := b.status()
		if err == nil && allBack(rows) {
			return time.Since(start), nil
		}
		last = rows
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("not every worker back %v after %s: %+v (%v)", b.o.recover, after, describe(last), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func describe(rows []row) []string {
	var out []string
	for _, r := range rows {
		s := fmt.Sprintf("%s.%d", r.Service, r.Instance)
		if r.State != nil {
			s += " " + *r.State
		}
		if r.ConnectionID == nil {
			s += " (not registered)"
		}
		out = append(out, s)
	}
	return out
}

func allBack(rows []row) bool {
	for _, s := range services {
		ready := 0
		for _, r := range rows {
			if r.Service == s.name && r.State != nil && *r.State == "ready" && r.PID != nil && *r.PID != 0 &&
				(!s.supervised || r.ConnectionID != nil) {
				ready++
			}
		}
		if ready != s.count {
			return false
		}
	}
	return true
}

// quietChecks counts the run's processes and vigil run's zombies once
// everything has settled.
func (b *bench) quietChecks() {
	want := 1 // the supervisor
	for _, s := range services {
		want += s.count * s.processes
	}
	var got []int
	for try := 0; try < 50; try++ {
		got = runProcesses(b.runID)
		if len(got) <= want {
			break
		}
		time.Sleep(100 * time.Millisecond) // old processes still stopping
	}
	if len(got) > want {
		b.extra = append(b.extra, fmt.Sprintf("%d processes of the run, want %d: %v", len(got), want, got))
	}
	z := zombieChildren(b.cmd.Process.Pid)
	if len(z) > 0 {
		time.Sleep(500 * time.Millisecond)
		for _, pid := range zombieChildren(b.cmd.Process.Pid) {
			if slices.Contains(z, pid) {
				b.zombies = append(b.zombies, strconv.Itoa(pid))
			}
		}
	}
}

var runIDLine = regexp.MustCompile(`msg=run id=([0-9a-f]+)`)

func (b *bench) findRunID() string {
	if m := runIDLine.FindStringSubmatch(b.out.String()); m != nil {
		return m[1]
	}
	return ""
}

func (b *bench) supervisorPID() int {
	rows, _ := b.status()
	for _, r := range rows {
		if r.Service == "supervisor" && r.PID != nil {
			return *r.PID
		}
	}
	return 0
}

// runProcesses lists the live processes whose environment says they are
// of run id.
func runProcesses(id string) []int {
	if id == "" {
		return nil
	}
	marker := []byte("VIGIL_RUN=" + id + "\x00")
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && (bytes.HasPrefix(env, marker) || bytes.Contains(env, append([]byte{0}, marker...))) {
			out = append(out, pid)
		}
	}
	return out
}

// zombieChildren lists pid's children that are zombies.
func zombieChildren(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		for _, f := range strings.Fields(string(b)) {
			c, _ := strconv.Atoi(f)
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c))
			s := string(st)
			if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) && s[i+2] == 'Z' {
				out = append(out, c)
			}
		}
	}
	return out
}

// figures are a process's descriptors, threads and resident size.
type figures struct {
	pid, fds, threads int
	rssMiB            float64
}

func figuresOf(pid int) figures {
	f := figures{pid: pid}
	if pid == 0 {
		return f
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	f.fds = len(fds)
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(st), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "Threads:":
			f.threads, _ = strconv.Atoi(fields[1])
		case "VmRSS:":
			kb, _ := strconv.Atoi(fields[1])
			f.rssMiB = float64(kb) / 1024
		}
	}
	return f
}

// lockedBuffer is a buffer safe for concurrent writers and readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
