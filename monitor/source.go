package monitor

import (
	"errors"

	"github.com/vigild/vigil/procmetrics"
)

// figures are the sizes the memory monitor judges a process by.
type figures struct {
	shared  uint64 // Shared_Clean
	private uint64 // Private_Clean + Private_Dirty
}

// procSource reads the real /proc through procmetrics: statm for the
// resident size and smaps_rollup alone for the private and shared sizes
// (procmetrics' MemoryOf also reads stat and maps, which more than doubles
// the cost of a full check), and the host memory.
//
// It watches each worker with procmetrics.FS.Watch, which keeps its statm
// and smaps_rollup open and reads them again from their start, saving an
// open and a close per read; a kept file never reads a new process that
// reused the pid. A worker found gone is forgotten. procSource is used by
// one goroutine at a time (the monitor's loop); Forget and Close release
// the files. Where there is no Linux /proc, every reading fails with
// procmetrics' error wrapping errors.ErrUnsupported.
type procSource struct {
	fs      procmetrics.FS
	watched map[int]*procmetrics.Watched
}

func newProcSource(fs procmetrics.FS) *procSource {
	return &procSource{fs: fs, watched: make(map[int]*procmetrics.Watched)}
}

func (s *procSource) HostMemory() (procmetrics.HostMemory, error) { return s.fs.HostMemory() }

// watch returns the Watched of pid, made on first use.
func (s *procSource) watch(pid int) (*procmetrics.Watched, error) {
	if w, ok := s.watched[pid]; ok {
		return w, nil
	}
	w, err := s.fs.Watch(pid)
	if err != nil {
		return nil, err
	}
	s.watched[pid] = w
	return w, nil
}

func (s *procSource) Resident(pid int) (uint64, error) {
	w, err := s.watch(pid)
	if err != nil {
		return 0, err
	}
	res, err := w.Resident()
	if errors.Is(err, procmetrics.ErrNotFound) {
		s.Forget(pid)
	}
	return res, err
}

func (s *procSource) Figures(pid int) (figures, error) {
	w, err := s.watch(pid)
	if err != nil {
		return figures{}, err
	}
	shared, private, err := w.Memory()
	if err != nil {
		if errors.Is(err, procmetrics.ErrNotFound) {
			s.Forget(pid)
		}
		return figures{}, err
	}
	return figures{shared: shared, private: private}, nil
}

// Forget closes the files kept for pid.
func (s *procSource) Forget(pid int) {
	if w, ok := s.watched[pid]; ok {
		w.Close()
		delete(s.watched, pid)
	}
}

// Close closes every kept file.
func (s *procSource) Close() {
	for pid, w := range s.watched {
		w.Close()
		delete(s.watched, pid)
	}
}
