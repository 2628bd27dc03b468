// Package runstate keeps the record of a running `vigil run` beside its
// supervisor's socket: a lock file that one controller holds (flock) while
// it runs, with what a later run needs to know if this one dies without
// cleaning up (its pid, its run id, its cgroup).
//
// A second `vigil run` on the same configuration finds the lock held and
// says who holds it; a run after a controller that was killed finds the
// lock free and the dead run's record, and stops what is left of it.
package runstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ErrRunning is wrapped by Acquire's error when a live process holds the
// lock.
var ErrRunning = errors.New("already running")

// Record is what a run says of itself.
type Record struct {
	// PID is the controller's pid.
	PID int `json:"pid"`
	// RunID is the run's id: every child's VIGIL_RUN.
	RunID string `json:"run_id"`
	// Cgroup is the run's cgroup, "" when none.
	Cgroup string `json:"cgroup,omitempty"`
	// Socket is the supervisor's socket.
	Socket string `json:"socket"`
	// Started is when the run started.
	Started time.Time `json:"started"`
}

// Lock is a held run lock.
type Lock struct {
	f    *os.File
	path string
}

// PathFor is the lock file of a socket: beside it, SOCKET.lock.
func PathFor(socket string) string { return socket + ".lock" }

// Acquire takes the lock file at path, creating it. When a live process
// holds it, the error wraps ErrRunning and the holder's record is returned
// with it. Otherwise prev is the record of a run that ended without
// releasing the lock (it was killed), or nil.
func Acquire(path string) (l *Lock, prev *Record, err error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("run lock %s: %w", path, err)
		}
		rec := read(f)
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, rec, fmt.Errorf("run lock %s: %w", path, ErrRunning)
			}
			return nil, nil, fmt.Errorf("run lock %s: %w", path, err)
		}
		// The holder before may have removed the file between our open and
		// our lock: then the lock is on a file nobody else will find, and
		// we start again.
		if same(f, path) {
			// Read again under the lock: the holder may have written meanwhile.
			return &Lock{f: f, path: path}, read(f), nil
		}
		f.Close()
	}
}

// same reports whether f is the file at path.
func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// read decodes the record in f, nil when there is none.
func read(f *os.File) *Record {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil || len(b) == 0 {
		return nil
	}
	var r Record
	if json.Unmarshal(b, &r) != nil || r.PID == 0 {
		return nil
	}
	return &r
}

// Write replaces the lock file's record.
func (l *Lock) Write(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	if _, err := l.f.WriteAt(append(b, '\n'), 0); err != nil {
		return err
	}
	return l.f.Sync()
}

// Release removes the lock file and unlocks it: the run ended cleanly.
func (l *Lock) Release() error {
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}
