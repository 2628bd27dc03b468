//go:build linux

package container

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// cgroups keeps a cgroup v2 per child under the run's own cgroup
// (vigil-RUNID, made beside nothing, under this process's cgroup): what is
// left of a child when it exits is killed through its cgroup.kill,
// whatever became of its process group or environment.
type cgroups struct {
	base   string
	baseFD int // base, open in the process's table for the run (see make)

	swept []string // cgroups left by killed runs, removed at the start

	mu   sync.Mutex
	dirs map[uint64]string // spawn number -> the child's cgroup
	dead []string          // killed, removed once empty
}

// newCgroups makes the run's cgroup, or says why it cannot: no cgroup v2
// hierarchy mounted, not writable, or no cgroup.kill (Linux before 5.14).
func newCgroups(runID string) (*cgroups, error) {
	mount, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	own, err := ownCgroup()
	if err != nil {
		return nil, err
	}
	base := filepath.Join(mount, own, "vigil-"+runID)
	if err := os.Mkdir(base, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", base, err)
	}
	if _, err := os.Stat(filepath.Join(base, "cgroup.kill")); err != nil {
		_ = os.Remove(base)
		return nil, fmt.Errorf("cgroup %s has no cgroup.kill (Linux 5.14 or later): %w", base, err)
	}
	fd, err := unix.Open(base, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(base)
		return nil, &os.PathError{Op: "open", Path: base, Err: err}
	}
	g := &cgroups{base: base, baseFD: fd, dirs: map[uint64]string{}}
	// What runs whose controller and guard were both killed left beside
	// this one (empty cgroups, which nothing else removes).
	for _, dir := range staleRunCgroups(base, time.Now()) {
		removeCgroupTree(dir, time.Now())
		if _, err := os.Stat(dir); err != nil {
			g.swept = append(g.swept, dir)
		}
	}
	return g, nil
}

// cgroup2Mount is where the cgroup v2 hierarchy is mounted.
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if !ok || len(fields) < 5 || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		return fields[4], nil
	}
	return "", errors.New("no cgroup v2 hierarchy mounted")
}

// ownCgroup is this process's cgroup v2 path ("0::PATH").
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("this process is in no cgroup v2")
}

// make creates the cgroup of a child and opens it for CLONE_INTO_CGROUP,
// in the calling thread's table (a plain descriptor, never in the
// poller: a spawner thread may have a table of its own); the caller
// closes it. at is the run's cgroup (baseFD) in that table, or -1: the
// cgroup is made and opened relative to it, which spares the kernel a
// walk of the whole path twice per spawn (a tenth of the mkdir).
func (g *cgroups) make(seq uint64, name string, at int) (int, error) {
	leaf := name + "-" + strconv.FormatUint(seq, 10)
	dir := g.base + "/" + leaf
	rel := leaf
	if at < 0 {
		at, rel = unix.AT_FDCWD, dir
	}
	if err := unix.Mkdirat(at, rel, 0o755); err != nil {
		return -1, &os.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	fd, err := unix.Openat(at, rel, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Rmdir(dir)
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	g.mu.Lock()
	g.dirs[seq] = dir
	g.mu.Unlock()
	return fd, nil
}

// remove removes the cgroup of a child that could not be started.
func (g *cgroups) remove(seq uint64) {
	g.mu.Lock()
	dir := g.dirs[seq]
	delete(g.dirs, seq)
	g.mu.Unlock()
	if dir != "" {
		_ = os.Remove(dir)
	}
}

// kill kills whatever is left in a reaped child's cgroup, and reports
// whether the child had one, its name (SERVICE.INDEX), and the processes
// it left, named before they were killed (see describeProcs; "" when
// none); the cgroup is removed by a later sweep once empty.
func (g *cgroups) kill(seq uint64) (had bool, name, left string) {
	g.mu.Lock()
	dir := g.dirs[seq]
	delete(g.dirs, seq)
	if dir != "" {
		g.dead = append(g.dead, dir)
	}
	g.mu.Unlock()
	if dir == "" {
		return false, "", ""
	}
	name = strings.TrimSuffix(filepath.Base(dir), "-"+strconv.FormatUint(seq, 10))
	if pids := cgroupProcs(dir); len(pids) > 0 {
		left = describeProcs(pids, 5)
	}
	if os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0) != nil {
		return false, name, ""
	}
	return true, name, left
}

// sweep removes the killed cgroups that are empty now.
func (g *cgroups) sweep() {
	g.mu.Lock()
	defer g.mu.Unlock()
	kept := g.dead[:0]
	for _, dir := range g.dead {
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			kept = append(kept, dir)
		}
	}
	g.dead = kept
}

// killAll kills every process of the run's cgroups.
func (g *cgroups) killAll() {
	_ = os.WriteFile(filepath.Join(g.base, "cgroup.kill"), []byte("1"), 0)
}

// close removes every cgroup of the run (they must be empty by now).
func (g *cgroups) close() {
	g.mu.Lock()
	for _, dir := range g.dirs {
		g.dead = append(g.dead, dir)
	}
	g.dirs = map[uint64]string{}
	g.mu.Unlock()
	g.sweep()
	_ = unix.Close(g.baseFD)
	_ = os.Remove(g.base)
}
