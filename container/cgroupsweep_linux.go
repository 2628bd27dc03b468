//go:build linux

package container

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// staleAfter: a run's cgroup younger than this is never taken for one
// left behind (a controller opens the one it made at once; see
// staleRunCgroups).
const staleAfter = time.Minute

// runCgroupName is the name of a run's cgroup (vigil-RUNID).
var runCgroupName = regexp.MustCompile(`^vigil-[0-9a-f]{12}$`)

// staleRunCgroups returns the cgroups of other runs of this user beside
// own (in its parent) that were left behind by a run whose controller and
// guard were both killed: nothing runs in them or under them, they are
// older than staleAfter, and no process holds one open (a live controller
// holds its run's open for the whole run) or names it on its command line
// (a guard stopping its run). The processes are looked at only when there
// is such a cgroup at all.
func staleRunCgroups(own string, now time.Time) []string {
	parent := filepath.Dir(own)
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	// Only this user's: another's live controller may be a process whose
	// descriptors this one cannot read.
	uid := os.Geteuid()
	var candidates []string
	for _, e := range entries {
		dir := filepath.Join(parent, e.Name())
		if !e.IsDir() || dir == own || !runCgroupName.MatchString(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil || !ownedBy(fi, uid) || now.Sub(fi.ModTime()) < staleAfter || populated(dir) {
			continue
		}
		candidates = append(candidates, dir)
	}
	if len(candidates) == 0 {
		return nil
	}
	inUse := cgroupsInUse(candidates)
	var stale []string
	for _, dir := range candidates {
		if !inUse[dir] {
			stale = append(stale, dir)
		}
	}
	return stale
}

// ownedBy reports whether fi's owner is uid.
func ownedBy(fi os.FileInfo, uid int) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid
}

// populated reports whether a process runs in the cgroup dir or under it
// (true, too, if that cannot be read).
func populated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return true
	}
	return !bytes.Contains(b, []byte("populated 0"))
}

// cgroupsInUse returns those of dirs that some process has open, or
// names on its command line.
func cgroupsInUse(dirs []string) map[string]bool {
	inUse := map[string]bool{}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		for _, d := range dirs {
			inUse[d] = true // cannot tell: keep them all
		}
		return inUse
	}
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		base := filepath.Join("/proc", p.Name())
		if cmdline, err := os.ReadFile(filepath.Join(base, "cmdline")); err == nil {
			for _, d := range dirs {
				if bytes.Contains(cmdline, []byte(d)) {
					inUse[d] = true
				}
			}
		}
		fds, err := os.ReadDir(filepath.Join(base, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(base, "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(link, "/") {
				continue
			}
			for _, d := range dirs {
				if link == d || strings.HasPrefix(link, d+"/") {
					inUse[d] = true
				}
			}
		}
	}
	return inUse
}
