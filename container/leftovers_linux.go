//go:build linux

package container

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// StopRun kills, with SIGKILL, every process whose environment says it
// belongs to the run runID (EnvRun, which every child of a Controller with
// a Subreaper carries and its descendants inherit), and everything in the
// run's cgroup (cgroup, "" for none), and returns the pids it killed. It
// scans again until it finds none or timeout has passed, for processes
// that were forking meanwhile. It is what is done when a controller was
// killed: by its guard, or by the next run on the same configuration.
//
// Only processes whose environment this process may read are found (its
// own user's, or all as root). This process itself is never killed.
func StopRun(runID, cgroup string, timeout time.Duration) []int {
	if runID == "" {
		return nil
	}
	var killed []int
	if cgroup != "" {
		killed = cgroupProcs(cgroup)
		_ = os.WriteFile(filepath.Join(cgroup, "cgroup.kill"), []byte("1"), 0)
	}
	marker := []byte(EnvRun + "=" + runID + "\x00")
	self := os.Getpid()
	deadline := time.Now().Add(timeout)
	for {
		found := 0
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
			if err != nil || !hasVar(env, marker) {
				continue
			}
			if unix.Kill(pid, unix.SIGKILL) == nil {
				found++
				if !slices.Contains(killed, pid) {
					killed = append(killed, pid)
				}
			}
		}
		if found == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cgroup != "" {
		removeCgroupTree(cgroup, deadline)
	}
	return killed
}

// cgroupProcs lists the processes of a cgroup and the cgroups under it.
func cgroupProcs(root string) []int {
	var pids []int
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range bytes.Fields(b) {
			if pid, err := strconv.Atoi(string(f)); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// hasVar reports whether the NUL-separated environment env holds the
// entry marker ("KEY=VALUE\x00").
func hasVar(env, marker []byte) bool {
	return bytes.HasPrefix(env, marker) || bytes.Contains(env, append([]byte{0}, marker...))
}

// removeCgroupTree removes a cgroup and the ones under it, deepest first,
// retrying until deadline while they are still populated.
func removeCgroupTree(root string, deadline time.Time) {
	for {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		left := 0
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				left++
			}
		}
		if left == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
