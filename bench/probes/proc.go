//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// selfSample is this process's figures at one moment.
type selfSample struct {
	at                 time.Time
	cpu, user, sys     time.Duration // getrusage
	ticks, serverTicks int64         // /proc/PID/stat utime+stime
	switches           int64
	threads            int
	goroutines         int
	rssKiB             int64
}

func takeSelf(servers []int) (selfSample, error) {
	s := selfSample{at: time.Now(), goroutines: runtime.NumGoroutine()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, err
	}
	s.user, s.sys = time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
	s.cpu = s.user + s.sys
	s.switches = ru.Nvcsw + ru.Nivcsw
	var err error
	if s.ticks, err = statTicks("self"); err != nil {
		return s, err
	}
	for _, pid := range servers {
		t, err := statTicks(strconv.Itoa(pid))
		if err != nil {
			return s, err
		}
		s.serverTicks += t
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return s, err
	}
	s.threads = int(statusField(status, "Threads:"))
	s.rssKiB = statusField(status, "VmRSS:")
	return s, nil
}

// statTicks is utime+stime of /proc/PID/stat, in 10ms ticks.
func statTicks(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: no )", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%s/stat: %w", pid, err)
	}
	return ut + st, nil
}

func threadCount() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	return int(statusField(b, "Threads:"))
}

// statusField is the first number after name in /proc/PID/status.
func statusField(status []byte, name string) int64 {
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func loadavg() string {
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
