package procmetrics

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// ErrNotFound reports that a process does not exist, or exited while it was
// being read. Test for it with errors.Is.
var ErrNotFound = errors.New("procmetrics: process not found")

// Default mount points used by [DefaultFS].
const (
	DefaultProcRoot   = "/proc"
	DefaultCgroupRoot = "/sys/fs/cgroup"
)

// FS is a rooted view of the proc and cgroup filesystems. The zero value is
// not usable; make one with [NewFS] or [DefaultFS]. An FS is a small value
// with no mutable state: it may be copied and used from many goroutines.
type FS struct {
	proc   string // proc mount, e.g. "/proc" or "testdata/proc"
	cgroup string // cgroup mount, e.g. "/sys/fs/cgroup"
	// unsupported is set by DefaultFS on systems without a Linux /proc.
	unsupported error
}

// NewFS returns an FS reading processes under procRoot and cgroup files under
// cgroupRoot. An empty procRoot means [DefaultProcRoot], an empty cgroupRoot
// [DefaultCgroupRoot]. procRoot must be an existing directory; cgroupRoot need
// not exist (then no cgroup limit is ever found and [FS.HostMemory] reports
// /proc/meminfo).
func NewFS(procRoot, cgroupRoot string) (FS, error) {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	if cgroupRoot == "" {
		cgroupRoot = DefaultCgroupRoot
	}
	st, err := os.Stat(procRoot)
	if err != nil {
		return FS{}, fmt.Errorf("procmetrics: proc root: %w", err)
	}
	if !st.IsDir() {
		return FS{}, fmt.Errorf("procmetrics: proc root %s: not a directory", procRoot)
	}
	return FS{proc: filepath.Clean(procRoot), cgroup: filepath.Clean(cgroupRoot)}, nil
}

// ProcRoot returns the proc mount this FS reads.
func (fs FS) ProcRoot() string { return fs.proc }

// CgroupRoot returns the cgroup mount this FS reads.
func (fs FS) CgroupRoot() string { return fs.cgroup }

// check reports whether the FS can be used at all.
func (fs FS) check() error {
	if fs.unsupported != nil {
		return fs.unsupported
	}
	if fs.proc == "" {
		return errors.New("procmetrics: zero FS: make one with NewFS or DefaultFS")
	}
	return nil
}

// pidPath returns <proc>/<pid>/<name>.
func (fs FS) pidPath(pid int, name string) string {
	b := make([]byte, 0, len(fs.proc)+len(name)+16)
	b = append(b, fs.proc...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, '/')
	b = append(b, name...)
	return string(b)
}

// gone reports whether err means the process is not there (any more):
// ENOENT when its directory vanished, ESRCH when it exited between open and
// read.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// wrapPidErr turns a read error on a process file into an error naming the
// place, wrapping ErrNotFound when the process is gone.
func wrapPidErr(path string, err error) error {
	if gone(err) {
		return fmt.Errorf("%w: %s: %w", ErrNotFound, path, err)
	}
	return fmt.Errorf("procmetrics: %s: %w", path, err)
}
