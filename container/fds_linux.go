//go:build linux

package container

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeRangeCloexec is close_range(2)'s CLOSE_RANGE_CLOEXEC.
const closeRangeCloexec = 1 << 2

// InheritNothing marks every descriptor of this process above 2 close-on-
// exec, so that children get only the descriptors a Spec gives them: a
// descriptor this process inherited without close-on-exec (from a shell, a
// service manager) would otherwise reach every child (fork keeps it, and
// exec does not close it). Call it at start, before any child.
func InheritNothing() error {
	if err := unix.CloseRange(3, ^uint(0), closeRangeCloexec); err == nil {
		return nil
	}
	// Before Linux 5.11: one at a time.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	}
	return nil
}
