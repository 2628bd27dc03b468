package logs

import (
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/internal/pipeshare"
)

// pipeShare is what the hub may add to its pipes' capacity, in bytes:
// half of the user's share of pipe memory when the kernel holds the user
// to one (/proc/sys/fs/pipe-user-pages-soft, for a user without
// CAP_SYS_RESOURCE), so that the user's other pipes (its workers' own)
// keep their size. Past the share, the kernel makes every new pipe of
// that user 8 KiB and grows none: a hundred unprivileged workers that
// each log a line would have taken it all (1 MiB per pipe, 64 MiB
// share). A pipe not grown keeps the kernel's size, and is read more
// often (see readPace). -1: no limit. (Root is held to a share too where
// it lacks CAP_SYS_RESOURCE: in a default Docker container.)
type pipeShare struct {
	once sync.Once
	left atomic.Int64
}

// take takes n bytes of the share, or says there are not that many left.
func (s *pipeShare) take(n int) bool {
	s.once.Do(func() { s.left.Store(userPipeShare()) })
	for {
		left := s.left.Load()
		if left < 0 {
			return true
		}
		if left < int64(n) {
			return false
		}
		if s.left.CompareAndSwap(left, left-int64(n)) {
			return true
		}
	}
}

// give returns n bytes taken.
func (s *pipeShare) give(n int) {
	if n > 0 && s.left.Load() >= 0 {
		s.left.Add(int64(n))
	}
}

// userPipeShare is half of this user's share of pipe memory in bytes, or
// -1 when the kernel holds it to none (see package pipeshare).
func userPipeShare() int64 {
	pages := pipeshare.Pages()
	if pages <= 0 {
		return -1
	}
	return int64(pages) * int64(os.Getpagesize()) / 2
}

// growPipe is growPipeFd of f's descriptor.
func (h *Hub) growPipe(f *os.File) (pace readPace, grown int) {
	rc, err := f.SyscallConn() // not Fd(): that would make f blocking
	if err != nil {
		return readPace{}, 0
	}
	_ = rc.Control(func(fd uintptr) { pace, grown = h.growPipeFd(int(fd)) })
	return pace, grown
}

// growPipeFd asks for a pipe of pipeSize bytes (F_SETPIPE_SZ) if the
// hub's share allows (see pipeShare; the kernel may refuse too, and the
// pipe keeps the size it has), and returns the pace of the pipe as it is
// then (see readPace; the zero one, when fd is not a pipe) and what it
// took of the share (to give back when the pipe is closed). A reader
// calls it once, when the pipe is first written to (see pipeSize).
func (h *Hub) growPipeFd(fd int) (pace readPace, grown int) {
	size, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return readPace{}, 0
	}
	if size >= pipeSize || !h.pipes.take(pipeSize-size) {
		return h.pace(size), 0
	}
	n, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, pipeSize)
	if err != nil || n <= size {
		h.pipes.give(pipeSize - size)
		return h.pace(size), 0
	}
	return h.pace(n), pipeSize - size
}
