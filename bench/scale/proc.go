//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// memory is one process's memory and threads, from /proc, in bytes.
type memory struct {
	rss, anon, pss int64
	threads        int
}

func (m memory) String() string {
	return fmt.Sprintf("RSS %s (anonymous %s, PSS %s), %d threads", mib(m.rss), mib(m.anon), mib(m.pss), m.threads)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// readMemory reads VmRSS, RssAnon and Threads from /proc/PID/status and
// Pss from /proc/PID/smaps_rollup.
func readMemory(pid int) (memory, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	m := memory{
		rss:     field(status, "VmRSS:") << 10,
		anon:    field(status, "RssAnon:") << 10,
		threads: int(field(status, "Threads:")),
	}
	if rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		m.pss = field(rollup, "Pss:") << 10
	}
	return m, nil
}

// field reads the number after key at the start of a line ("VmRSS:  123 kB").
func field(text []byte, key string) int64 {
	for line := range bytes.SplitSeq(text, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(key)); ok {
			fs := strings.Fields(string(v))
			if len(fs) == 0 {
				return 0
			}
			n, _ := strconv.ParseInt(fs[0], 10, 64)
			return n
		}
	}
	return 0
}

// statFields returns the fields of /proc/PID/stat after the command name
// (which may hold spaces and parentheses): [0] is the state, [1] ppid.
func statFields(stat []byte) []string {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(stat[i+1:]))
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
