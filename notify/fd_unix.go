//go:build unix

package notify

import "syscall"

func checkFD(fd int) error {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st)
}

func closeOnExec(fd int) { syscall.CloseOnExec(fd) }
