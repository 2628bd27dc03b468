package procfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// StatFields returns the fields of /proc/PID/stat after the command name
// (which may hold spaces and parentheses): [0] is the state, [1] the ppid.
func StatFields(stat []byte) []string {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(stat[i+1:]))
}

// StatusLine returns what follows key at the start of a line of a /proc
// status file ("VmRSS:"), nil when no line starts so.
func StatusLine(status []byte, key string) []byte {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(key)); ok {
			return v
		}
	}
	return nil
}

// StatusField reads the number (the first word) of a /proc status line
// ("VmRSS:  123 kB" gives 123); 0 when there is none.
func StatusField(status []byte, key string) int64 {
	fs := strings.Fields(string(StatusLine(status, key)))
	if len(fs) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(fs[0], 10, 64)
	return n
}

// Children calls f with each child of parent and its stat fields.
func Children(parent int, f func(pid int, stat []string)) {
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
		if fs := StatFields(stat); len(fs) > 1 && fs[1] == strconv.Itoa(parent) {
			f(pid, fs)
		}
	}
}

// FindChild returns the pid of a child of parent whose command line holds
// word, or 0.
func FindChild(parent int, word string) int {
	found := 0
	Children(parent, func(pid int, _ []string) {
		if found == 0 && slices.Contains(strings.Split(Cmdline(pid), " "), word) {
			found = pid
		}
	})
	return found
}

// Cmdline is pid's command line, its words joined by spaces.
func Cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// Zombie reports whether pid is gone or a zombie.
func Zombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := StatFields(stat)
	return len(f) == 0 || f[0] == "Z" || f[0] == "X"
}
