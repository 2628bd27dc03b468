//go:build linux

package main

import (
	"fmt"
	"os"

	"github.com/vigild/vigil/bench/internal/procfs"
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
		rss:     procfs.StatusField(status, "VmRSS:") << 10,
		anon:    procfs.StatusField(status, "RssAnon:") << 10,
		threads: int(procfs.StatusField(status, "Threads:")),
	}
	if rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		m.pss = procfs.StatusField(rollup, "Pss:") << 10
	}
	return m, nil
}
