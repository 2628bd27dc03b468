package logs

import (
	"os"

	"golang.org/x/sys/unix"
)

// growPipe is growPipeFd of f's descriptor.
func growPipe(f *os.File) int {
	rc, err := f.SyscallConn() // not Fd(): that would make f blocking
	if err != nil {
		return 0
	}
	size := 0
	_ = rc.Control(func(fd uintptr) { size = growPipeFd(int(fd)) })
	return size
}

// growPipeFd asks for a pipe of pipeSize bytes (F_SETPIPE_SZ; an
// unprivileged process may be refused past its share, and then keeps the
// size it has) and returns the pipe's capacity, 0 when fd is not a pipe.
func growPipeFd(fd int) int {
	size, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return 0
	}
	if size < pipeSize {
		if n, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, pipeSize); err == nil {
			size = n
		}
	}
	return size
}
