//go:build unix

package procmetrics

import (
	"io/fs"
	"syscall"
)

// canKeepOpen reports whether files may be kept open between captures and
// re-read with pread (see Sampler.MaxOpenFiles).
const canKeepOpen = true

// readFile reads the file at path into buf[:0], growing it up to max bytes,
// and returns the filled slice. Files longer than max are truncated at max.
// It uses raw system calls: /proc files are small, and os.File's poller
// registration and finalizer cost more than the read itself.
func readFile(path string, buf []byte, max int) ([]byte, error) {
	fd, err := openFD(path)
	if err != nil {
		return buf[:0], err
	}
	defer syscall.Close(fd)
	return preadFD(fd, path, buf, max)
}

// openFD opens path for reading.
func openFD(path string) (int, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// closeFD closes fd.
func closeFD(fd int) { syscall.Close(fd) }

// preadFD reads the file open at fd from its start into buf[:0], growing buf
// up to max bytes. A read shorter than asked is taken as the end of the
// file: true of regular files and of the /proc files read here (the kernel
// generates stat, statm, cmdline and smaps_rollup whole and copies all that
// fits), and it saves a system call. A /proc file re-read from offset 0 is
// generated afresh. path is only for errors.
func preadFD(fd int, path string, buf []byte, max int) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= max {
				return buf[:max], nil
			}
			n := 2 * cap(buf)
			if n < 512 {
				n = 512
			}
			if n > max {
				n = max
			}
			nb := make([]byte, len(buf), n)
			copy(nb, buf)
			buf = nb
		}
		want := cap(buf) - len(buf)
		n, err := syscall.Pread(fd, buf[len(buf):cap(buf)], int64(len(buf)))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return buf[:0], &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n <= 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if n < want {
			return buf, nil
		}
	}
}

// countLines counts the newline characters of the file at path, reading it
// through buf (which must be non-empty) without keeping its contents.
func countLines(path string, buf []byte) (int, error) {
	fd, err := openFD(path)
	if err != nil {
		return 0, err
	}
	defer syscall.Close(fd)
	lines := 0
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		for _, c := range buf[:n] {
			if c == '\n' {
				lines++
			}
		}
		if n < len(buf) { // a short read is the end, as in preadFD
			return lines, nil
		}
	}
}
