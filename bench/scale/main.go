//go:build linux

// Command scale measures vigil at scale, with the real binary and the small
// idle Go worker of bench/controller (which says {"ready":true} on fd 3,
// stamps its moment of readiness into a FIFO, and registers with the
// supervisor):
//
//   - for each N of -n (10, 100, 1,000): start → all ready, from starting
//     `vigil run` until the last of its N workers has stamped its
//     readiness, beside the floor measured in the same run: the same N
//     workers spawned straight from this command, one after the other, as
//     a script would. The runs alternate, floor then vigil, -runs times,
//     and the medians are printed with their ratio. Then, with vigil's N
//     workers registered and idle: each process's RSS (and its anonymous
//     part, and PSS, which counts the pages controller and supervisor
//     share once), threads, and crash → ready (SIGKILL a worker until its
//     replacement has stamped its readiness);
//
//   - the memory per worker: the growth of the pair's anonymous memory
//     from the smallest N to each larger one, per added worker;
//
//   - the supervisor alone (`vigil supervise`, no monitors) with each
//     count of -conns (1,000, 10,000) registered connections held by this
//     command: a status call's round trip (median and p99), the reply's
//     size, and the supervisor's RSS per connection.
//
//     go run ./bench/scale                         # builds vigil and the worker
//     go run ./bench/scale -vigil bin/vigil -n 10,100,1000 -conns 1000,10000 -runs 3
//     go run ./bench/scale -vigil new/vigil -base old/vigil -n 100,1000 -conns "" -idle=false -runs 7
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigild/vigil/bench/internal/procfs"
)

type options struct {
	vigil, worker string
	base          string // another vigil, timed alternately with vigil
	keys          string // TOML keys added to the workers' service, for vigil's runs
	idle          bool
	ns, conns     []int
	runs          int
	kills         int
	settle        time.Duration
	later         time.Duration // the memory read again after this much idle (0: not)
	calls         int
	verbose       bool
}

func main() {
	var o options
	var ns, conns string
	flag.StringVar(&o.vigil, "vigil", "", "the vigil binary (default: build ./cmd/vigil)")
	flag.StringVar(&o.base, "base", "", "another vigil binary (say, the build before a change) whose start-ups are timed alternately with -vigil's, each beside its own floor run")
	flag.StringVar(&o.keys, "keys", "", "TOML keys added to the workers' service for -vigil's runs, not -base's (say 'own_cgroup = false', with the same binary as -base, to time that key)")
	flag.BoolVar(&o.idle, "idle", true, "after the start-ups, the idle figures and crash → ready (false: start-ups only)")
	flag.StringVar(&o.worker, "worker", "", "the idle worker binary (default: build ./bench/controller/idleworker)")
	flag.StringVar(&ns, "n", "10,100,1000", "numbers of workers of vigil run, comma-separated (empty: none)")
	flag.StringVar(&conns, "conns", "1000,10000", "numbers of connections registered with the supervisor alone, comma-separated (empty: none)")
	flag.IntVar(&o.runs, "runs", 3, "start-ups of each N, each beside a floor run")
	flag.IntVar(&o.kills, "kills", 20, "timed kills per crash-to-ready measurement (after 3 untimed ones)")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "wait once every worker has registered, before the memory is read")
	flag.DurationVar(&o.later, "later", 0, "read the idle memory again after this much more idle time (say 3m: the runtime's forced garbage collection every 2 minutes, vigil's trim every minute); 0: not")
	flag.IntVar(&o.calls, "calls", 200, "timed status calls per count of connections")
	flag.BoolVar(&o.verbose, "v", false, "show vigil's output on stderr")
	flag.Parse()
	var err error
	if o.ns, err = counts(ns); err == nil {
		o.conns, err = counts(conns)
	}
	if err != nil || o.runs < 1 || o.kills < 1 || o.calls < 1 {
		fmt.Fprintln(os.Stderr, "bench/scale: -n and -conns are comma-separated positive counts; -runs, -kills and -calls positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/scale:", err)
		os.Exit(1)
	}
}

func counts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad count %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "vigil-bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.vigil == "" {
		o.vigil = filepath.Join(dir, "vigil")
		if err := goBuild(o.vigil, "github.com/vigild/vigil/cmd/vigil"); err != nil {
			return err
		}
	}
	if o.worker == "" {
		o.worker = filepath.Join(dir, "idleworker")
		if err := goBuild(o.worker, "github.com/vigild/vigil/bench/controller/idleworker"); err != nil {
			return err
		}
	}
	for _, p := range []*string{&o.vigil, &o.worker, &o.base} {
		if *p == "" {
			continue
		}
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	fmt.Printf("machine: %d CPUs, load average %s at the start; vigil %s\n", runtime.NumCPU(), loadAverage(), o.vigil)

	if len(o.ns) > 0 {
		b, err := newBench(dir, o)
		if err != nil {
			return err
		}
		defer b.close()
		var idle []idleFigures
		for _, n := range o.ns {
			f, err := b.scale(ctx, n)
			if err != nil {
				return fmt.Errorf("with %d workers: %w", n, err)
			}
			idle = append(idle, f)
		}
		if o.idle {
			printPerWorker(idle)
		}
	}
	for _, n := range o.conns {
		if err := alone(ctx, dir, o, n); err != nil {
			return fmt.Errorf("supervisor alone, %d connections: %w", n, err)
		}
	}
	return nil
}

// variant is one vigil binary's start-ups, each beside its own floor run.
type variant struct {
	name, bin, keys string
	floors, alls    []time.Duration
	readys          []time.Duration
	ctrlCPU, supCPU []time.Duration
	// What each start-up cost the machine, and its floor run.
	costs, floorCosts []startCost
}

// costFigures are the medians of costs: the CPUs' busy time, the share
// of their time they were idle and stolen by the hypervisor, and the
// workers' own CPU time per worker.
func costFigures(costs []startCost, n int) string {
	busy := make([]time.Duration, len(costs))
	idle := make([]float64, len(costs))
	steal := make([]float64, len(costs))
	workers := make([]time.Duration, len(costs))
	self := make([]time.Duration, len(costs))
	for i, c := range costs {
		busy[i], workers[i], self[i] = c.machine.busy, c.workers, c.self
		if total := c.machine.busy + c.machine.idle + c.machine.steal; total > 0 {
			idle[i] = 100 * float64(c.machine.idle) / float64(total)
			steal[i] = 100 * float64(c.machine.steal) / float64(total)
		}
	}
	slices.Sort(idle)
	slices.Sort(steal)
	return fmt.Sprintf("CPUs busy %v, idle %.1f%%, stolen %.1f%%; per worker: the workers' own CPU %v, this command's %v",
		median(busy).Round(time.Millisecond), idle[len(idle)/2], steal[len(steal)/2],
		(median(workers) / time.Duration(n)).Round(time.Microsecond), (median(self) / time.Duration(n)).Round(time.Microsecond))
}

// scale measures vigil run with n workers: start-ups beside the floor
// (alternating with -base's, if given), then the idle figures and crash
// to ready of the last start-up.
func (b *bench) scale(ctx context.Context, n int) (idleFigures, error) {
	vs := []*variant{{name: "vigil", bin: b.o.vigil, keys: b.o.keys}}
	if b.o.base != "" {
		vs = append(vs, &variant{name: "base", bin: b.o.base})
	}
	var s *session
	defer func() {
		if s != nil {
			_, _ = s.stop()
		}
	}()
	for i := range b.o.runs {
		for k := range vs {
			v := vs[(i+k)%len(vs)] // each goes first in turn
			f, fc, err := b.floor(ctx, n)
			if err != nil {
				return idleFigures{}, fmt.Errorf("floor: %w", err)
			}
			v.floors = append(v.floors, f)
			v.floorCosts = append(v.floorCosts, fc)
			// Timed with workers that do not register, as the floor's: the
			// supervisor's work on registrations would compete with the
			// later workers' start-ups, which the floor does not have.
			if s, err = b.start(ctx, v.bin, v.keys, n, false); err != nil {
				return idleFigures{}, fmt.Errorf("%s start-up %d: %w", v.name, i+1, err)
			}
			v.alls = append(v.alls, s.startup.lastWorker)
			v.readys = append(v.readys, s.startup.ready)
			v.ctrlCPU = append(v.ctrlCPU, s.startup.ctrlCPU)
			v.supCPU = append(v.supCPU, s.startup.supCPU)
			v.costs = append(v.costs, s.startup.cost)
			if _, err := s.stop(); err != nil {
				return idleFigures{}, fmt.Errorf("%s start-up %d: stop: %w", v.name, i+1, err)
			}
			s = nil
		}
	}
	for _, v := range vs {
		fl, all := median(v.floors), median(v.alls)
		ratios := make([]float64, len(v.alls))
		for i := range v.alls {
			ratios[i] = float64(v.alls[i]) / float64(v.floors[i])
		}
		slices.Sort(ratios)
		fmt.Printf("N=%d: %s: start → all ready %v (%v–%v), floor %v (%v–%v): %.2f× the floor (each run over its floor: %.2f–%.2f×); READY=1 at %v; CPU from start to all ready, per worker: controller %v, supervisor %v (medians of %d runs, alternating; %s: %s; floor: %s)\n",
			n, v.name, all, slices.Min(v.alls).Round(time.Millisecond), slices.Max(v.alls).Round(time.Millisecond),
			fl, slices.Min(v.floors).Round(time.Millisecond), slices.Max(v.floors).Round(time.Millisecond),
			float64(all)/float64(fl), ratios[0], ratios[len(ratios)-1], median(v.readys),
			(median(v.ctrlCPU) / time.Duration(n)).Round(time.Microsecond), (median(v.supCPU) / time.Duration(n)).Round(time.Microsecond),
			b.o.runs, v.name, list(v.alls), list(v.floors))
		fmt.Printf("N=%d: %s: what a start-up cost the machine, from its start until the last worker was ready (medians): %s; its floor: %s\n",
			n, v.name, costFigures(v.costs, n), costFigures(v.floorCosts, n))
	}
	if !b.o.idle {
		return idleFigures{n: n}, nil
	}

	// The idle figures and crash to ready, with workers registered.
	var err error
	if s, err = b.start(ctx, b.o.vigil, b.o.keys, n, true); err != nil {
		return idleFigures{}, fmt.Errorf("start-up with registrations: %w", err)
	}
	fmt.Printf("N=%d: start → all ready with every worker registering once ready: %v\n", n, s.startup.lastWorker.Round(time.Millisecond))
	if err := s.waitRegistered(ctx, n); err != nil {
		return idleFigures{}, err
	}
	if err := sleep(ctx, b.o.settle); err != nil {
		return idleFigures{}, err
	}
	f := idleFigures{n: n}
	if err := f.read(s); err != nil {
		return f, err
	}
	f.print(fmt.Sprintf("N=%d: idle, %d workers registered", n, n))
	if b.o.later > 0 {
		if err := sleep(ctx, b.o.later); err != nil {
			return f, err
		}
		var g idleFigures
		if err := g.read(s); err != nil {
			return f, err
		}
		g.print(fmt.Sprintf("N=%d: idle %v later", n, b.o.later))
	}

	if err := s.statusCommand(ctx, n); err != nil {
		return f, err
	}

	lat, err := s.crashes(ctx, b.o.kills)
	if err != nil {
		return f, err
	}
	fmt.Printf("N=%d: crash → ready: median %v, p95 %v, max %v (%d kills)\n",
		n, median(lat), p95(lat), lat[len(lat)-1].Round(10*time.Microsecond), len(lat))
	return f, nil
}

// idleFigures are one N's idle memory.
type idleFigures struct {
	n         int
	ctrl, sup memory
	guard     memory // zero when the run has no guard
}

// read reads the memory of the session's controller, supervisor and guard.
func (f *idleFigures) read(s *session) error {
	var err error
	if f.ctrl, err = readMemory(s.cmd.Process.Pid); err != nil {
		return err
	}
	if f.sup, err = readMemory(s.supervisorPID); err != nil {
		return err
	}
	if pid := procfs.FindChild(s.cmd.Process.Pid, "guard"); pid != 0 {
		if f.guard, err = readMemory(pid); err != nil {
			return err
		}
	}
	return nil
}

// print prints the figures after what.
func (f *idleFigures) print(what string) {
	fmt.Printf("%s: controller %s; supervisor %s; the pair: RSS %s, PSS %s",
		what, f.ctrl, f.sup, mib(f.ctrl.rss+f.sup.rss), mib(f.ctrl.pss+f.sup.pss))
	if f.guard.rss > 0 {
		fmt.Printf("; guard %s; all three: RSS %s, PSS %s", f.guard,
			mib(f.ctrl.rss+f.sup.rss+f.guard.rss), mib(f.ctrl.pss+f.sup.pss+f.guard.pss))
	}
	fmt.Println()
}

// printPerWorker prints the growth of each process's anonymous memory
// from the smallest N to each larger one, per added worker.
func printPerWorker(idle []idleFigures) {
	if len(idle) < 2 {
		return
	}
	slices.SortFunc(idle, func(a, b idleFigures) int { return a.n - b.n })
	base := idle[0]
	for _, f := range idle[1:] {
		if f.n == base.n {
			continue
		}
		per := func(a, b int64) float64 { return float64(b-a) / float64(f.n-base.n) }
		c, s := per(base.ctrl.anon, f.ctrl.anon), per(base.sup.anon, f.sup.anon)
		fmt.Printf("memory per worker, N=%d over N=%d (anonymous RSS): controller %.1f KiB, supervisor %.1f KiB, the pair %.1f KiB (RSS: %.1f KiB)\n",
			f.n, base.n, c/1024, s/1024, (c+s)/1024, (per(base.ctrl.rss, f.ctrl.rss)+per(base.sup.rss, f.sup.rss))/1024)
	}
}

func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func median(t []time.Duration) time.Duration {
	s := slices.Clone(t)
	slices.Sort(s)
	return s[len(s)/2].Round(10 * time.Microsecond)
}

// quantile returns the q-quantile (nearest rank) of t.
func quantile(t []time.Duration, q float64) time.Duration {
	s := slices.Clone(t)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))].Round(10 * time.Microsecond)
}

func p95(t []time.Duration) time.Duration { return quantile(t, 0.95) }

// list prints durations in the order they came.
func list(t []time.Duration) string {
	parts := make([]string, len(t))
	for i, d := range t {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(parts, " ")
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
