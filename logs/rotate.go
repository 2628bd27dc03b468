package logs

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// maxIovecs is the most buffers one writev(2) takes (IOV_MAX).
const maxIovecs = 1024

// followEvery: a file being written to is checked at most this often (and
// after a failed write) to still be the one at its path; one removed, to
// free the disk, or moved aside by another rotator is closed, and a new
// one made at the path.
const followEvery = time.Second

// rotFile is a log file rotated by size: when the next lines would take
// it past maxSize, it becomes path.1, path.1 becomes path.2, and so on up
// to path.KEEP; older ones are removed. With compress, a goroutine of the
// file's gzips path.1 into path.1.gz after each rotation; the next
// rotation waits for it. A file is only cut between lines, so it exceeds
// maxSize only when a single line does.
//
// Only the file sink's goroutine writes; limits may change at any time.
type rotFile struct {
	path   string
	logger *slog.Logger

	mu       sync.Mutex // guards the limits
	maxSize  int64
	keep     int
	compress bool

	f       *os.File
	fi      os.FileInfo // f's, when opened: what the path must still name
	size    int64
	checked time.Time     // when the path was last found to name f
	failing bool          // the last write failed: check the path at the next
	gzDone  chan struct{} // closed when the compression in progress ends (nil: none)
	gzStop  chan struct{} // closed to cut the compression short
}

func (r *rotFile) setLimits(maxSize int64, keep int, compress bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxSize, r.keep, r.compress = maxSize, keep, compress
}

func (r *rotFile) limits() (int64, int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxSize, r.keep, r.compress
}

// write appends bufs, whole lines each, in one writev(2) when they fit in
// the file, rotating first when they would not.
func (r *rotFile) write(bufs [][]byte) error {
	maxSize, keep, compress := r.limits()
	total := 0
	for _, p := range bufs {
		total += len(p)
	}
	if total == 0 {
		return nil
	}
	r.follow()
	if r.f == nil {
		if err := r.open(); err != nil {
			r.failing = true
			return err
		}
	}
	var err error
	if int64(total) <= maxSize-r.size {
		err = r.writev(bufs)
	} else {
		for _, p := range bufs {
			if err = r.writeLines(p, maxSize, keep, compress); err != nil {
				break
			}
		}
	}
	r.failing = err != nil
	return err
}

// follow closes the file if its path no longer names it (removed, or
// moved aside), so that the next write makes a new one there: checked
// every followEvery, and after a failed write.
func (r *rotFile) follow() {
	if r.f == nil || (!r.failing && time.Since(r.checked) < followEvery) {
		return
	}
	r.checked = time.Now()
	if fi, err := os.Stat(r.path); err == nil && os.SameFile(fi, r.fi) {
		return
	}
	r.logger.Info("log file removed or moved away: writing a new one", "file", r.path)
	if err := r.f.Close(); err != nil {
		r.logger.Warn("log file: close failed", "file", r.path, "error", err)
	}
	r.f, r.fi = nil, nil
}

// writeLines appends p, whole lines, rotating first when they would not
// fit.
func (r *rotFile) writeLines(p []byte, maxSize int64, keep int, compress bool) error {
	for len(p) > 0 {
		if r.f == nil {
			if err := r.open(); err != nil {
				return err
			}
		}
		room := maxSize - r.size
		if int64(len(p)) <= room {
			return r.writeAll(p)
		}
		cut := 0
		if room > 0 {
			cut = bytes.LastIndexByte(p[:room], '\n') + 1
		}
		if cut == 0 && r.size == 0 {
			// One line longer than the file may be: it goes whole.
			if cut = bytes.IndexByte(p, '\n') + 1; cut == 0 {
				cut = len(p)
			}
		}
		if cut > 0 {
			if err := r.writeAll(p[:cut]); err != nil {
				return err
			}
			p = p[cut:]
		}
		if len(p) > 0 {
			if err := r.rotate(keep, compress); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *rotFile) writeAll(p []byte) error {
	n, err := r.f.Write(p)
	r.size += int64(n)
	if err != nil {
		return fmt.Errorf("write %s: %w", r.path, err)
	}
	return nil
}

// writev appends bufs whole (the file is open); it may change bufs.
func (r *rotFile) writev(bufs [][]byte) error {
	switch len(bufs) {
	case 0:
		return nil
	case 1:
		return r.writeAll(bufs[0])
	}
	rc, err := r.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("write %s: %w", r.path, err)
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for len(bufs) > 0 {
			n, err := unix.Writev(int(fd), bufs[:min(len(bufs), maxIovecs)])
			if err == unix.EINTR {
				continue
			}
			if err == nil && n == 0 {
				err = io.ErrShortWrite
			}
			if err != nil {
				werr = err
				return true
			}
			r.size += int64(n)
			for n > 0 {
				if k := len(bufs[0]); n >= k {
					n -= k
					bufs = bufs[1:]
				} else {
					bufs[0] = bufs[0][n:]
					n = 0
				}
			}
		}
		return true
	})
	if err = cmp.Or(err, werr); err != nil {
		return fmt.Errorf("write %s: %w", r.path, err)
	}
	return nil
}

func (r *rotFile) open() error {
	if err := os.MkdirAll(filepath.Dir(r.path), 0o755); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log file: %w", err)
	}
	r.f, r.fi, r.size, r.checked = f, fi, fi.Size(), time.Now()
	return nil
}

// old names the n-th rotated file.
func (r *rotFile) old(n int, gz bool) string {
	name := r.path + "." + strconv.Itoa(n)
	if gz {
		name += ".gz"
	}
	return name
}

// rotate moves the file aside and opens a new one.
func (r *rotFile) rotate(keep int, compress bool) error {
	if err := r.f.Close(); err != nil {
		r.logger.Warn("log file: close failed", "file", r.path, "error", err)
	}
	r.f = nil
	if r.gzDone != nil {
		<-r.gzDone // path.1 must be whole before it moves
		r.gzDone = nil
	}
	var errs []error
	note := func(err error) {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	// Remove what is past keep (keep may have shrunk), then shift.
	for n := keep; ; n++ {
		_, e1 := os.Lstat(r.old(n+1, false))
		_, e2 := os.Lstat(r.old(n+1, true))
		if e1 != nil && e2 != nil {
			break
		}
		note(os.Remove(r.old(n+1, false)))
		note(os.Remove(r.old(n+1, true)))
	}
	if keep == 0 {
		note(os.Remove(r.path))
	} else {
		note(os.Remove(r.old(keep, false)))
		note(os.Remove(r.old(keep, true)))
		for n := keep - 1; n >= 1; n-- {
			note(os.Rename(r.old(n, false), r.old(n+1, false)))
			note(os.Rename(r.old(n, true), r.old(n+1, true)))
		}
		note(os.Rename(r.path, r.old(1, false)))
		if compress {
			r.gzDone, r.gzStop = make(chan struct{}), make(chan struct{})
			go r.gzip(r.old(1, false), r.gzDone, r.gzStop)
		}
	}
	if err := r.open(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rotate %s: %w", r.path, err)
	}
	return nil
}

// gzip compresses name into name.gz and removes name.
func (r *rotFile) gzip(name string, done, stop chan struct{}) {
	defer close(done)
	if err := gzipFile(name, stop); err != nil {
		r.logger.Warn("log file: compression failed", "file", name, "error", err)
	}
}

func gzipFile(name string, stop <-chan struct{}) (err error) {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	in := stopReader{f, stop}
	tmp := name + ".gz.tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name+".gz"); err != nil {
		return err
	}
	return os.Remove(name)
}

// close closes the file and waits for a compression in progress, or for
// ctx: a compression cut short leaves path.1 whole.
func (r *rotFile) close(ctx context.Context) error {
	var err error
	if r.f != nil {
		err = r.f.Close()
		r.f = nil
	}
	if r.gzDone != nil {
		select {
		case <-r.gzDone:
			r.gzDone = nil
		case <-ctx.Done():
			close(r.gzStop)
			<-r.gzDone
			r.gzDone = nil
			err = errors.Join(err, fmt.Errorf("compressing %s.1 cut short: %w", r.path, context.Cause(ctx)))
		}
	}
	return err
}

// errStopped ends a compression cut short.
var errStopped = errors.New("stopped")

// stopReader reads r until stop is closed.
type stopReader struct {
	r    io.Reader
	stop <-chan struct{}
}

func (s stopReader) Read(p []byte) (int, error) {
	select {
	case <-s.stop:
		return 0, errStopped
	default:
		return s.r.Read(p)
	}
}
