package procmetrics

import "fmt"

// Watched is one process whose /proc/PID/statm and /proc/PID/smaps_rollup
// are kept open for repeated, cheap readings: each reading is one pread from
// the file's start (the kernel generates the content afresh), saving an open
// and a close. A file kept open on a process that has exited reads as gone
// even if its pid was reused since, so a Watched never reads another process
// than the one it was made for. On systems where files are not kept open
// (see [FS.Watch]) each reading opens the file by path.
//
// A Watched is not safe for concurrent use; Close releases its files. Make
// one with [FS.Watch].
type Watched struct {
	pid        int
	statmPath  string
	rollupPath string
	statm      int   // kept descriptor, -1 if none
	rollup     int   // kept descriptor, -1 if none
	rollupErr  error // why smaps_rollup could not be opened, reported by Memory
	buf        []byte
}

// Watch opens pid's statm and smaps_rollup once for repeated readings with
// [Watched.Resident] and [Watched.Memory]. Both files are opened together, so
// that both belong to the same process. A process that does not exist gives
// an error wrapping ErrNotFound. A smaps_rollup that may not be opened (it
// needs ptrace read access to the process) is no error here: Memory reports
// it, while Resident works. Close the Watched when done.
func (fs FS) Watch(pid int) (*Watched, error) {
	if err := fs.check(); err != nil {
		return nil, err
	}
	w := &Watched{
		pid:        pid,
		statmPath:  fs.pidPath(pid, "statm"),
		rollupPath: fs.pidPath(pid, "smaps_rollup"),
		statm:      -1,
		rollup:     -1,
	}
	if !canKeepOpen {
		// Files are read by path: check that the process is there.
		if _, err := w.Resident(); err != nil {
			return nil, err
		}
		return w, nil
	}
	fd, err := openFD(w.statmPath)
	if err != nil {
		return nil, wrapPidErr(w.statmPath, err)
	}
	w.statm = fd
	fd, err = openFD(w.rollupPath)
	switch {
	case err == nil:
		w.rollup = fd
	case gone(err):
		w.Close()
		return nil, wrapPidErr(w.rollupPath, err)
	default:
		w.rollupErr = wrapPidErr(w.rollupPath, err)
	}
	return w, nil
}

// Pid returns the process id the Watched reads.
func (w *Watched) Pid() int { return w.pid }

// read reads a watched file whole into w.buf, through its kept descriptor
// if there is one.
func (w *Watched) read(fd int, path string, max int) ([]byte, error) {
	var b []byte
	var err error
	if canKeepOpen {
		if fd < 0 {
			return nil, fmt.Errorf("procmetrics: %s: read after Close", path)
		}
		b, err = preadFD(fd, path, w.buf, max)
	} else {
		b, err = readFile(path, w.buf, max)
	}
	w.buf = b[:0]
	if err != nil {
		return nil, wrapPidErr(path, err)
	}
	return b, nil
}

// Resident returns the resident size in bytes of the process, from statm,
// as [FS.Resident] does. A process that has exited gives an error wrapping
// ErrNotFound, as does every later reading.
func (w *Watched) Resident() (uint64, error) {
	b, err := w.read(w.statm, w.statmPath, maxStatm)
	if err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, fmt.Errorf("%w: %s is empty", ErrNotFound, w.statmPath)
	}
	pages, err := parseStatmResident(b)
	if err != nil {
		return 0, fmt.Errorf("procmetrics: %s: %w", w.statmPath, err)
	}
	return pagesToBytes(pages), nil
}

// Memory returns the shared (Shared_Clean) and private (Private_Clean +
// Private_Dirty) sizes in bytes of the process, from smaps_rollup: the
// memory its pages share with others and the memory its exit would free.
// It costs the kernel a walk of the process's page tables. A process without
// an address space (zombie, kernel thread) reads zeros; one that has exited
// gives an error wrapping ErrNotFound; one whose smaps_rollup could not be
// opened, the error of that open.
func (w *Watched) Memory() (shared, private uint64, err error) {
	if w.rollupErr != nil {
		return 0, 0, w.rollupErr
	}
	b, err := w.read(w.rollup, w.rollupPath, maxRollup)
	if err != nil {
		return 0, 0, err
	}
	r, err := parseSmapsRollup(b)
	if err != nil {
		return 0, 0, fmt.Errorf("procmetrics: %s: %w", w.rollupPath, err)
	}
	return r.sharedClean, r.privateClean + r.privateDirty, nil
}

// Close closes the kept files; closing again does nothing. A closed Watched
// is not to be read (where files are kept, a reading is then an error). The
// error is always nil: it is there for io.Closer.
func (w *Watched) Close() error {
	for _, fd := range []*int{&w.statm, &w.rollup} {
		if *fd >= 0 {
			closeFD(*fd)
			*fd = -1
		}
	}
	return nil
}
