package procmetrics

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStatmResident(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"100000 2500 300 10 0 2000 0\n", 2500, true},
		{"  7 3\n", 3, true},
		{"100000 0 300 10 0 2000 0", 0, true},
		{"100000\n", 0, false},
		{"100000 lots 300\n", 0, false},
		{"", 0, false},
	} {
		got, err := parseStatmResident([]byte(tc.in))
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("%q: %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if !tc.ok && (err == nil || !errors.Is(err, errFormat)) {
			t.Errorf("%q: %d, %v; want a format error", tc.in, got, err)
		}
	}
}

// watch returns a Watched closed at the end of the test.
func watch(t *testing.T, fs FS, pid int) *Watched {
	t.Helper()
	w, err := fs.Watch(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func TestWatchFixture(t *testing.T) {
	fs := procFS(t)
	ps := uint64(os.Getpagesize())
	w := watch(t, fs, 101)
	for i := range 2 { // the second reading re-reads the kept files
		if r, err := w.Resident(); err != nil || r != 2500*ps {
			t.Errorf("reading %d: Resident = %d, %v", i, r, err)
		}
		shared, private, err := w.Memory()
		if err != nil || shared != 5000*1024 || private != (2500+2492)*1024 {
			t.Errorf("reading %d: Memory = %d, %d, %v", i, shared, private, err)
		}
	}
	if w.Pid() != 101 {
		t.Errorf("Pid = %d", w.Pid())
	}

	// A zombie: resident 0, no address space.
	z := watch(t, fs, 104)
	if r, err := z.Resident(); err != nil || r != 0 {
		t.Errorf("zombie: Resident = %d, %v", r, err)
	}
	if s, p, err := z.Memory(); err != nil || s != 0 || p != 0 {
		t.Errorf("zombie: Memory = %d, %d, %v", s, p, err)
	}

	if _, err := fs.Watch(999); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "999/statm") {
		t.Errorf("Watch(missing) err = %v", err)
	}
	if _, err := (FS{}).Watch(101); err == nil || !strings.Contains(err.Error(), "zero FS") {
		t.Errorf("Watch on a zero FS: err = %v", err)
	}

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if canKeepOpen {
		if _, err := w.Resident(); err == nil || !strings.Contains(err.Error(), "after Close") {
			t.Errorf("Resident after Close: err = %v", err)
		}
	}
}

func TestWatchBadFiles(t *testing.T) {
	root := copyTree(t)
	fs, err := NewFS(root, filepath.Join(root, "nocgroup"))
	if err != nil {
		t.Fatal(err)
	}
	w := watch(t, fs, 101)
	// Content rewritten in place is read again from the start.
	writeFile(t, filepath.Join(root, "101", "statm"), "9 3 1\n")
	writeFile(t, filepath.Join(root, "101", "smaps_rollup"), "Shared_Clean: 1 kB\nPrivate_Dirty: 2 kB\n")
	if r, err := w.Resident(); err != nil || r != 3*pageSize {
		t.Errorf("rewritten: Resident = %d, %v", r, err)
	}
	if s, p, err := w.Memory(); err != nil || s != 1024 || p != 2048 {
		t.Errorf("rewritten: Memory = %d, %d, %v", s, p, err)
	}
	// Malformed content: an error naming the file, not ErrNotFound.
	writeFile(t, filepath.Join(root, "101", "statm"), "9\n")
	writeFile(t, filepath.Join(root, "101", "smaps_rollup"), "Private_Dirty: lots kB\n")
	if _, err := w.Resident(); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "101/statm") {
		t.Errorf("malformed statm: err = %v", err)
	}
	if _, _, err := w.Memory(); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "101/smaps_rollup") {
		t.Errorf("malformed smaps_rollup: err = %v", err)
	}
	// An empty statm is a process reaped under the reader.
	writeFile(t, filepath.Join(root, "101", "statm"), "")
	if _, err := w.Resident(); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty statm: err = %v, want ErrNotFound", err)
	}

	// A smaps_rollup that cannot be opened (here a symlink loop; in life a
	// permission error) leaves Resident working and is Memory's error.
	rollup := filepath.Join(root, "102", "smaps_rollup")
	if err := os.Remove(rollup); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("smaps_rollup", rollup); err != nil {
		t.Fatal(err)
	}
	u := watch(t, fs, 102)
	if _, err := u.Resident(); err != nil {
		t.Errorf("Resident with an unreadable smaps_rollup: %v", err)
	}
	if _, _, err := u.Memory(); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "102/smaps_rollup") {
		t.Errorf("unreadable smaps_rollup: err = %v", err)
	}
	// A vanished smaps_rollup means a vanished process.
	if err := os.Remove(rollup); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Watch(102); !errors.Is(err, ErrNotFound) {
		t.Errorf("Watch without smaps_rollup: err = %v, want ErrNotFound", err)
	}
}
