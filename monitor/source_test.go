//go:build linux

package monitor

import (
	"errors"
	"os"
	"testing"

	"github.com/vigild/vigil/procmetrics"
)

func TestProcSourceFigures(t *testing.T) {
	src := newProcSource(procmetrics.DefaultFS())
	defer src.Close()
	fg, err := src.Figures(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	m, err := procmetrics.DefaultFS().MemoryOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The two readings are moments apart: close, not equal.
	if fg.private == 0 || fg.private > 2*m.PrivateSize() || m.PrivateSize() > 2*fg.private {
		t.Errorf("private %d, procmetrics says %d", fg.private, m.PrivateSize())
	}
	if fg.shared > 2*m.SharedCleanSize+1<<20 || m.SharedCleanSize > 2*fg.shared+1<<20 {
		t.Errorf("shared %d, procmetrics says %d", fg.shared, m.SharedCleanSize)
	}
	if _, err := src.Figures(1 << 30); !errors.Is(err, procmetrics.ErrNotFound) {
		t.Errorf("missing process: %v, want ErrNotFound", err)
	}
	res, err := src.Resident(os.Getpid())
	if want, _ := procmetrics.DefaultFS().Resident(os.Getpid()); err != nil || res == 0 || res > 2*want || want > 2*res {
		t.Errorf("resident %d (%v), procmetrics says %d", res, err, want)
	}
	// A kept file of a process that exited reads as gone, and the process
	// is forgotten.
	cmd := startSleep(t)
	pid := cmd.Process.Pid
	if _, err := src.Resident(pid); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Figures(pid); err != nil {
		t.Fatal(err)
	}
	if len(src.watched) != 2 {
		t.Errorf("watched %v, want this process and the child", src.watched)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := src.Resident(pid); !errors.Is(err, procmetrics.ErrNotFound) {
		t.Errorf("resident of an exited process: %v, want ErrNotFound", err)
	}
	if _, err := src.Figures(pid); !errors.Is(err, procmetrics.ErrNotFound) {
		t.Errorf("figures of an exited process: %v, want ErrNotFound", err)
	}
	if _, ok := src.watched[os.Getpid()]; len(src.watched) != 1 || !ok {
		t.Errorf("watched %v, want only this process", src.watched)
	}
	src.Forget(os.Getpid())
	if len(src.watched) != 0 {
		t.Errorf("watched %v after Forget", src.watched)
	}
}
