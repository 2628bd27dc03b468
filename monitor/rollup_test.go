//go:build linux

package monitor

import (
	"errors"
	"os"
	"testing"

	"github.com/vigild/vigil/procmetrics"
)

func TestParseRollup(t *testing.T) {
	in := "55d0c0a7a000-7ffc2b5fe000 ---p 00000000 00:00 0                          [rollup]\n" +
		"Rss:               20488 kB\nPss:               14788 kB\nShared_Clean:       7852 kB\n" +
		"Shared_Dirty:          0 kB\nPrivate_Clean:        56 kB\nPrivate_Dirty:      12580 kB\n" +
		"Referenced:        20432 kB\nAnonymous:         12580 kB\n"
	fg, err := parseRollup([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if fg.shared != 7852<<10 || fg.private != (56+12580)<<10 {
		t.Errorf("figures %+v", fg)
	}
	if fg, err := parseRollup(nil); err != nil || fg != (figures{}) {
		t.Errorf("empty rollup: %+v, %v", fg, err)
	}
	if _, err := parseRollup([]byte("Private_Dirty: lots\n")); err == nil {
		t.Error("a malformed line is no error")
	}
}

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
	if _, err := src.Figures(1 << 30); !errors.Is(err, procmetrics.ErrNotFound) {
		t.Errorf("missing process: %v, want ErrNotFound", err)
	}
	res, err := src.Resident(os.Getpid())
	if want, _ := procmetrics.DefaultFS().Resident(os.Getpid()); err != nil || res == 0 || res > 2*want || want > 2*res {
		t.Errorf("resident %d (%v), procmetrics says %d", res, err, want)
	}
	// A kept file of a process that exited reads as gone.
	cmd := startSleep(t)
	pid := cmd.Process.Pid
	if _, err := src.Resident(pid); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Figures(pid); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := src.Resident(pid); !errors.Is(err, procmetrics.ErrNotFound) {
		t.Errorf("resident of an exited process: %v, want ErrNotFound", err)
	}
	if _, err := src.Figures(pid); !errors.Is(err, procmetrics.ErrNotFound) {
		t.Errorf("figures of an exited process: %v, want ErrNotFound", err)
	}
	if len(src.statm) != 1 || len(src.rollup) != 1 {
		t.Errorf("kept files: statm %v, rollup %v, want only this process's", src.statm, src.rollup)
	}
}
