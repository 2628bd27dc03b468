//go:build linux

package container

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// spawnThread is what a spawner thread forks from. A fork copies the
// forking thread's descriptor table whole (every descriptor, close-on-exec
// or not), and the child's exec then closes the close-on-exec ones one by
// one: with the process's own table, that is every pipe and pidfd of every
// running child, so each spawn cost the controller and the child more the
// more children ran (at 1,000 workers, ~0.25 ms of CPU per spawn).
//
// So a spawner thread, where it can, has a table of its own (unshare
// CLONE_FILES) that holds almost nothing: it fetches the few descriptors a
// child gets from the process's table (pidfd_getfd, through a pidfd of
// the main thread, which never unshares), forks, and closes them again.
// Everything else (the pipes' other ends, the pidfd, the cgroup directory
// the controller keeps nothing of) stays where it was. Where unshare or
// pidfd_getfd is not allowed (Linux before 5.6, a seccomp filter), the
// thread forks from the process's table as before (shared).
type spawnThread struct {
	private bool
	leader  int // a pidfd of the main thread, in this thread's table (private only)
	// A descriptor of the process's that lives as long as the thread
	// (the run's cgroup directory), fetched once: kept, its number in
	// the process's table and in this thread's.
	keptFrom, kept int
}

// isMainThread reports whether the calling thread is the process's main
// thread, whose table is the process's (what /proc/self/fd shows and
// pidfd_getfd reads): it never takes one of its own.
func isMainThread() bool { return unix.Gettid() == unix.Getpid() }

// newSpawnThread sets up the calling thread, locked for good and not the
// main thread, to fork from: with a table of its own unless shared is
// set, or that is not possible.
func newSpawnThread(shared bool) *spawnThread {
	th := &spawnThread{leader: -1, keptFrom: -1, kept: -1}
	if shared || isMainThread() {
		return th
	}
	// pidfd_getfd must work before the table is given up; what is opened
	// for the test is closed before, as it would stay open in the
	// process's table.
	leader, err := unix.PidfdOpen(unix.Getpid(), 0)
	if err != nil {
		return th
	}
	probe, err := unix.PidfdGetfd(leader, leader, 0)
	unix.Close(leader)
	if err != nil {
		return th
	}
	unix.Close(probe)
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		return th
	}
	th.private = true
	// In this thread's table only; if it cannot be had (no descriptor
	// left), every spawn here fails, and is retried as spawns are.
	th.leader, _ = unix.PidfdOpen(unix.Getpid(), 0)
	th.dropCopies()
	return th
}

// dropCopies closes, in the thread's new table, the copies of what the
// process had open when it was made: held here, a pipe's write end would
// keep its reader from ever seeing the end, a socket from closing, a lock
// from being released. Kept: 0, 1 and 2, the pidfd of the main thread, and
// anonymous inodes (the Go runtime's epoll set and eventfd, which the
// runtime may use on any thread by number; they hold nothing of anyone).
func (th *spawnThread) dropCopies() {
	dir, err := unix.Open("/proc/thread-self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(dir)
	var fds []int
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(dir, buf)
		if err != nil || n <= 0 {
			break
		}
		var names []string
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
		for _, name := range names {
			if fd, err := strconv.Atoi(name); err == nil {
				fds = append(fds, fd)
			}
		}
	}
	link := make([]byte, 256)
	for _, fd := range fds {
		if fd <= 2 || fd == dir || fd == th.leader {
			continue
		}
		n, err := unix.Readlinkat(dir, strconv.Itoa(fd), link)
		if err == nil && strings.HasPrefix(string(link[:n]), "anon_inode:") {
			continue
		}
		unix.Close(fd)
	}
}

// fetch returns descriptors of the thread's table for the process's
// descriptors fds, for a child to get; release closes them once the
// child has them. A shared thread uses fds as they are.
func (th *spawnThread) fetch(fds []int) ([]uintptr, error) {
	out := make([]uintptr, 0, len(fds))
	for _, fd := range fds {
		if !th.private {
			out = append(out, uintptr(fd))
			continue
		}
		if th.leader < 0 {
			th.release(out)
			return nil, errors.New("spawner thread: no pidfd of the main thread")
		}
		local, err := unix.PidfdGetfd(th.leader, fd, 0)
		if err != nil {
			th.release(out)
			return nil, fmt.Errorf("pidfd_getfd %d: %w", fd, err)
		}
		out = append(out, uintptr(local))
	}
	return out, nil
}

// local returns, for fd, a descriptor of the process's that stays open
// for as long as the thread runs (one at most: the run's cgroup), one in
// the thread's table, fetched the first time and kept; -1 if it cannot
// be had (or th is nil).
func (th *spawnThread) local(fd int) int {
	switch {
	case th == nil || fd < 0:
		return -1
	case !th.private:
		return fd
	case th.keptFrom == fd:
		return th.kept
	case th.keptFrom >= 0 || th.leader < 0:
		return -1 // another one is kept, or nothing can be fetched
	}
	local, err := unix.PidfdGetfd(th.leader, fd, 0)
	if err != nil {
		return -1
	}
	th.keptFrom, th.kept = fd, local
	return local
}

// release closes what fetch returned (nothing for a shared thread).
func (th *spawnThread) release(fds []uintptr) {
	if !th.private {
		return
	}
	for _, fd := range fds {
		unix.Close(int(fd))
	}
}
