//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

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
	f := statFields(stat)
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
	s.rssKiB = statusField(status, "VmRSS:")
	s.nThreads = int(statusField(status, "Threads:"))
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
		th.comm = strings.TrimSpace(string(statusLine(st, "Name:")))
		th.switches = statusField(st, "voluntary_ctxt_switches:") + statusField(st, "nonvoluntary_ctxt_switches:")
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

// statFields returns the fields of /proc/PID/stat after the command name
// (which may hold spaces and parentheses): [0] is the state, [1] ppid,
// [11] utime, [12] stime.
func statFields(stat []byte) []string {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(stat[i+1:]))
}

func statusLine(status []byte, key string) []byte {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(key)); ok {
			return v
		}
	}
	return nil
}

// statusField reads a number (the first word) of a /proc status line.
func statusField(status []byte, key string) int64 {
	fs := strings.Fields(string(statusLine(status, key)))
	if len(fs) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(fs[0], 10, 64)
	return n
}

// findChild returns the pid of a child of parent whose command line holds
// word, or 0.
func findChild(parent int, word string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := statFields(stat)
		if len(f) > 1 && f[1] == strconv.Itoa(parent) && slices.Contains(strings.Split(cmdline(pid), " "), word) {
			return pid
		}
	}
	return 0
}

// children describes parent's children: pid, state and command line.
func children(parent int) string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if f := statFields(stat); len(f) > 1 && f[1] == strconv.Itoa(parent) {
			out = append(out, fmt.Sprintf("%d %s %q", pid, f[0], cmdline(pid)))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "; ")
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// zombie reports whether pid is gone or a zombie.
func zombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := statFields(stat)
	return len(f) == 0 || f[0] == "Z" || f[0] == "X"
}

func nCPU() int { return runtime.NumCPU() }

func kernel() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}
