package supervisor

import (
	"bytes"
	"os"
	"strconv"
)

// maxAncestry bounds the walk up a process's ancestors.
const maxAncestry = 64

// isDescendant reports whether pid is a descendant of ancestor, walking up
// the parent pids in /proc (false when a process in between is gone, or
// /proc cannot tell).
func isDescendant(pid, ancestor int) bool {
	for range maxAncestry {
		ppid, ok := parentOf(pid)
		if !ok || ppid <= 0 {
			return false
		}
		if ppid == ancestor {
			return true
		}
		if ppid == 1 {
			return false
		}
		pid = ppid
	}
	return false
}

// parentOf returns the parent pid of a process from /proc/PID/stat.
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// "PID (COMM) STATE PPID ...": COMM may hold any byte, ")" included.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(f[1]))
	return ppid, err == nil
}

// verifyProcess checks that a peer may register pid as its process_id: its
// own process or one of its descendants, or any process when the peer is
// root. A peer without a pid (outside the supervisor's pid namespace, or
// over a transport that gives no credentials) may register, unverified:
// the monitors do not act on its process. It reports whether the
// registration is verified.
func verifyProcess(peer Credentials, pid int) (bool, error) {
	switch {
	case peer.PID <= 0:
		return false, nil
	case pid <= 0, pid == peer.PID, peer.UID == 0, isDescendant(pid, peer.PID):
		return true, nil
	}
	return false, errNotDescendant(pid, peer)
}
