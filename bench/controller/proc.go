//go:build linux

package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigild/vigil/bench/internal/procfs"
	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// sample is one reading of a process's figures from /proc.
type sample struct {
	at       time.Time
	threads  map[int]thread // by tid
	ticks    int64          // utime+stime of the whole process
	rssKiB   int64
	nThreads int
}

// thread is one thread's counters.
type thread struct {
	comm     string
	switches int64 // voluntary + nonvoluntary context switches
	runNS    int64 // time on CPU, ns (schedstat)
}

// take reads pid's figures: /proc/PID/stat and status, and every thread's
// status (context switches) and schedstat (CPU time in ns, far finer than
// stat's 10 ms ticks).
func take(pid int) (sample, error) {
	s := sample{at: time.Now(), threads: map[int]thread{}}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	f := procfs.StatFields(stat)
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.ticks = ut + st
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	s.rssKiB = procfs.StatusField(status, "VmRSS:")
	s.nThreads = int(procfs.StatusField(status, "Threads:"))
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return s, err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		dir := fmt.Sprintf("/proc/%d/task/%d/", pid, tid)
		st, err1 := os.ReadFile(dir + "status")
		sched, err2 := os.ReadFile(dir + "schedstat")
		if err1 != nil || err2 != nil {
			continue // the thread just exited
		}
		var th thread
		th.comm = strings.TrimSpace(string(procfs.StatusLine(st, "Name:")))
		th.switches = procfs.StatusField(st, "voluntary_ctxt_switches:") + procfs.StatusField(st, "nonvoluntary_ctxt_switches:")
		if fs := strings.Fields(string(sched)); len(fs) > 0 {
			th.runNS, _ = strconv.ParseInt(fs[0], 10, 64)
		}
		s.threads[tid] = th
	}
	return s, nil
}

// figures are a process's idle costs over a window.
type figures struct {
	window     time.Duration
	rssKiB     int64
	threads    int
	wakeups    float64 // context switches per second, all threads
	cpuMsMin   float64 // from schedstat, ms per minute
	ticksMsMin float64 // from stat's utime+stime, ms per minute (10 ms resolution)
	perThread  []string
}

func diff(a, b sample) figures {
	w := b.at.Sub(a.at)
	f := figures{window: w, rssKiB: b.rssKiB, threads: b.nThreads}
	var sw, run int64
	type busy struct {
		tid      int
		comm     string
		switches int64
	}
	var bs []busy
	for tid, tb := range b.threads {
		ta := a.threads[tid] // zero for a thread born in the window
		sw += tb.switches - ta.switches
		run += tb.runNS - ta.runNS
		if d := tb.switches - ta.switches; d > 0 {
			bs = append(bs, busy{tid, tb.comm, d})
		}
	}
	per := w.Seconds()
	f.wakeups = float64(sw) / per
	f.cpuMsMin = float64(run) / 1e6 / per * 60
	f.ticksMsMin = float64(b.ticks-a.ticks) * (1000 / clockTicks) / per * 60
	slices.SortFunc(bs, func(x, y busy) int { return int(y.switches - x.switches) })
	for _, x := range bs {
		f.perThread = append(f.perThread, fmt.Sprintf("%d:%.2f/s", x.tid, float64(x.switches)/per))
	}
	return f
}

func (f figures) String() string {
	busy := "none"
	if len(f.perThread) > 0 {
		busy = strings.Join(f.perThread, " ")
	}
	return fmt.Sprintf("RSS %.1f MiB, CPU %.2f ms/min (stat ticks: %.0f ms/min), %.2f wake-ups/s, %d threads (wake-ups by thread: %s)",
		float64(f.rssKiB)/1024, f.cpuMsMin, f.ticksMsMin, f.wakeups, f.threads, busy)
}

// children describes parent's children: pid, state and command line.
func children(parent int) string {
	var out []string
	procfs.Children(parent, func(pid int, stat []string) {
		out = append(out, fmt.Sprintf("%d %s %q", pid, stat[0], procfs.Cmdline(pid)))
	})
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "; ")
}

func nCPU() int { return runtime.NumCPU() }

func kernel() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}
