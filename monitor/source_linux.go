//go:build linux

package monitor

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/procmetrics"
)

// procSource reads the real /proc: statm for the resident size and
// smaps_rollup alone for the private and shared sizes (procmetrics' MemoryOf
// also reads stat and maps, which more than doubles the cost of a full
// check), and procmetrics for the host memory.
//
// It keeps each worker's statm and smaps_rollup open and reads them again
// from their start, saving an open and a close per read. A file kept open on
// a process that has exited reads ESRCH, even if the pid was reused, so a
// new process is never taken for the old one. It is used by one goroutine
// at a time (the monitor's loop); Forget and Close release the files.
type procSource struct {
	fs       procmetrics.FS
	statm    map[int]int // pid -> fd
	rollup   map[int]int
	buf      [4096]byte
	pageSize uint64
}

func newProcSource(fs procmetrics.FS) *procSource {
	return &procSource{fs: fs, statm: make(map[int]int), rollup: make(map[int]int), pageSize: uint64(os.Getpagesize())}
}

func (s *procSource) HostMemory() (procmetrics.HostMemory, error) { return s.fs.HostMemory() }

// read reads /proc/PID/name through a kept file.
func (s *procSource) read(kept map[int]int, pid int, name string) ([]byte, error) {
	fd, ok := kept[pid]
	if !ok {
		path := s.fs.ProcRoot() + "/" + strconv.Itoa(pid) + "/" + name
		var err error
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, pidError(path, err)
		}
		kept[pid] = fd
	}
	for {
		n, err := unix.Pread(fd, s.buf[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			delete(kept, pid)
			return nil, pidError(s.fs.ProcRoot()+"/"+strconv.Itoa(pid)+"/"+name, err)
		}
		return s.buf[:n], nil
	}
}

func (s *procSource) Resident(pid int) (uint64, error) {
	b, err := s.read(s.statm, pid, "statm")
	if err != nil {
		return 0, err
	}
	if len(b) == 0 {
		s.Forget(pid)
		return 0, fmt.Errorf("%w: /proc/%d/statm is empty", procmetrics.ErrNotFound, pid)
	}
	pages, err := parseStatmResident(b)
	if err != nil {
		return 0, fmt.Errorf("monitor: /proc/%d/statm: %w", pid, err)
	}
	return pages * s.pageSize, nil
}

func (s *procSource) Figures(pid int) (figures, error) {
	b, err := s.read(s.rollup, pid, "smaps_rollup")
	if err != nil {
		return figures{}, err
	}
	fg, err := parseRollup(b)
	if err != nil {
		return figures{}, fmt.Errorf("monitor: /proc/%d/smaps_rollup: %w", pid, err)
	}
	return fg, nil
}

// Forget closes the files kept for pid.
func (s *procSource) Forget(pid int) {
	for _, kept := range []map[int]int{s.statm, s.rollup} {
		if fd, ok := kept[pid]; ok {
			unix.Close(fd)
			delete(kept, pid)
		}
	}
}

// Close closes every kept file.
func (s *procSource) Close() {
	for _, kept := range []map[int]int{s.statm, s.rollup} {
		for pid, fd := range kept {
			unix.Close(fd)
			delete(kept, pid)
		}
	}
}
