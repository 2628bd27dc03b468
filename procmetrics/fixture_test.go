package procmetrics

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func fixtureFS(t testing.TB, name string) FS {
	t.Helper()
	fs, err := NewFS(filepath.Join("testdata", name, "proc"), filepath.Join("testdata", name, "sys"))
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func procFS(t testing.TB) FS {
	t.Helper()
	fs, err := NewFS("testdata/proc", "testdata/nocgroup/sys")
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// newSampler returns a Sampler on fs whose files are closed at the end of
// the test.
func newSampler(t testing.TB, fs FS) *Sampler {
	s := &Sampler{FS: fs}
	t.Cleanup(func() { s.Close() })
	return s
}

func keys(m map[int]*Process) []int {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestCaptureFixtureTree(t *testing.T) {
	s := newSampler(t, procFS(t))
	got, err := s.Capture(100, false)
	if err != nil {
		t.Fatal(err)
	}
	// 103 vanished (no stat), 200/201/1 are outside the tree; 50 is a
	// great-grandchild listed before its parent.
	if want := []int{50, 100, 101, 102, 104}; !slices.Equal(keys(got), want) {
		t.Fatalf("pids = %v, want %v", keys(got), want)
	}
	p := got[100]
	ps := uint64(os.Getpagesize())
	want := Process{
		ProcessID: 100, ParentProcessID: 1, ProcessGroupID: 100,
		// 40 s of processor over 500 s of life (start 500 s, uptime 1000 s).
		ProcessorUtilization: 8, ProcessorTime: 40, ElapsedTime: 500,
		VirtualSize: 409600000, ResidentSize: 2500 * ps, TotalSize: 2500 * ps,
		Command: "vigil run",
	}
	if *p != want {
		t.Errorf("100 = %+v\nwant %+v", *p, want)
	}
	if c := got[101].Command; c != "ruby worker.rb --name a b" {
		t.Errorf("101 command = %q", c)
	}
	if got[101].ParentProcessID != 100 || got[102].ParentProcessID != 101 || got[50].ParentProcessID != 102 {
		t.Errorf("parents: %d %d %d", got[101].ParentProcessID, got[102].ParentProcessID, got[50].ParentProcessID)
	}
	if c := got[104].Command; c != "defunct-one" {
		t.Errorf("zombie command = %q, want its comm", c)
	}
	for pid, p := range got {
		if p.Memory != nil {
			t.Errorf("%d: memory details without asking", pid)
		}
	}
}

func TestCaptureFixtureMemory(t *testing.T) {
	s := newSampler(t, procFS(t))
	got, err := s.Capture(101, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{50, 101, 102}; !slices.Equal(keys(got), want) {
		t.Fatalf("pids = %v, want %v", keys(got), want)
	}
	m := got[101].Memory
	if m == nil {
		t.Fatal("101: no memory details")
	}
	const k = 1024
	want := Memory{
		MapCount: 195, ResidentSize: 10000 * k, ProportionalSize: 5000 * k,
		SharedCleanSize: 5000 * k, SharedDirtySize: 8 * k, PrivateCleanSize: 2500 * k,
		PrivateDirtySize: 2492 * k, ReferencedSize: 10000 * k, AnonymousSize: 2492 * k,
		SwapSize: 12 * k, ProportionalSwapSize: 6 * k, MinorFaults: 1101, MajorFaults: 3,
	}
	if *m != want {
		t.Errorf("memory = %+v\nwant %+v", *m, want)
	}
	if got[101].TotalSize != want.ProportionalSize {
		t.Errorf("total_size = %d, want the proportional size", got[101].TotalSize)
	}

	// The zombie has no address space: no memory details, total = resident.
	all, err := s.Capture(100, true)
	if err != nil {
		t.Fatal(err)
	}
	if z := all[104]; z.Memory != nil || z.TotalSize != z.ResidentSize {
		t.Errorf("zombie: memory %+v total %d", z.Memory, z.TotalSize)
	}
}

func TestProcessJSONFieldNames(t *testing.T) {
	s := newSampler(t, procFS(t))
	got, err := s.Capture(102, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(got[102])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	// The names of the original's status transcript.
	general := []string{"process_id", "parent_process_id", "process_group_id", "processor_utilization",
		"total_size", "virtual_size", "resident_size", "processor_time", "elapsed_time", "command", "memory"}
	memory := []string{"map_count", "resident_size", "proportional_size", "shared_clean_size",
		"shared_dirty_size", "private_clean_size", "private_dirty_size", "referenced_size",
		"anonymous_size", "swap_size", "proportional_swap_size", "minor_faults", "major_faults"}
	checkKeys := func(what string, m map[string]any, want []string) {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		want = slices.Clone(want)
		slices.Sort(want)
		if !slices.Equal(ks, want) {
			t.Errorf("%s keys = %v\nwant %v", what, ks, want)
		}
	}
	checkKeys("process", m, general)
	mm, ok := m["memory"].(map[string]any)
	if !ok {
		t.Fatalf("memory = %v", m["memory"])
	}
	checkKeys("memory", mm, memory)
}

func TestCaptureErrors(t *testing.T) {
	s := newSampler(t, procFS(t))
	for _, pid := range []int{103, 999} { // vanished, never existed
		if _, err := s.Capture(pid, false); !errors.Is(err, ErrNotFound) {
			t.Errorf("Capture(%d) err = %v, want ErrNotFound", pid, err)
		}
	}
	var zero Sampler
	if _, err := zero.Capture(1, false); err == nil || !strings.Contains(err.Error(), "zero FS") {
		t.Errorf("zero Sampler err = %v", err)
	}
	if _, err := NewFS("testdata/proc/1/stat", ""); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("NewFS(file) err = %v", err)
	}
	if _, err := NewFS("testdata/nonexistent", ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewFS(missing) err = %v", err)
	}
}

// copyTree copies the fixture proc tree into a temporary directory the test
// may change.
func copyTree(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS("testdata/proc")); err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUtilizationOverInterval(t *testing.T) {
	root := copyTree(t)
	fs, err := NewFS(root, "")
	if err != nil {
		t.Fatal(err)
	}
	s := newSampler(t, fs)
	first, err := s.Capture(102, false)
	if err != nil {
		t.Fatal(err)
	}
	if u := first[102].ProcessorUtilization; u != 0.8 { // (300+100)/100 s over 500 s
		t.Fatalf("first capture utilisation = %v, want lifetime 0.8", u)
	}
	// 10 s later, 102 used 2.5 s more (250 ticks): 25 %.
	writeFile(t, root+"/uptime", "1010.00 1900.00\n")
	writeFile(t, root+"/102/stat", stat(102, "grandchild", 101, 100, 450, 200, 50000))
	// 50 was replaced by a new process with the same pid (a later start):
	// its figures start over with the lifetime average.
	writeFile(t, root+"/50/stat", stat(50, "wrapped", 102, 100, 100, 0, 100500))
	second, err := s.Capture(102, false)
	if err != nil {
		t.Fatal(err)
	}
	if u := second[102].ProcessorUtilization; u != 25 {
		t.Errorf("interval utilisation = %v, want 25", u)
	}
	if u := second[50].ProcessorUtilization; u != 20 { // 1 s over 5 s of life
		t.Errorf("reused pid utilisation = %v, want 20 (lifetime)", u)
	}
	// A capture within the same uptime reading repeats the last figure.
	third, err := s.Capture(102, false)
	if err != nil {
		t.Fatal(err)
	}
	if u := third[102].ProcessorUtilization; u != 25 {
		t.Errorf("same-instant utilisation = %v, want 25", u)
	}
}

// stat formats a /proc/PID/stat line with the given figures.
func stat(pid int, comm string, ppid, pgrp, utime, stime, start int) string {
	return strings.Join([]string{itoa(pid), "(" + comm + ")", "S", itoa(ppid), itoa(pgrp), itoa(pgrp),
		"0", "-1", "4194304", "1000", "0", "2", "0", itoa(utime), itoa(stime), "0", "0", "20", "0",
		"1", "0", itoa(start), "409600000", "2500", "18446744073709551615", "0", "0"}, " ") + "\n"
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestCaptureMalformedStat(t *testing.T) {
	root := copyTree(t)
	writeFile(t, root+"/101/stat", "101 (worker) S 100 abc\n")
	fs, err := NewFS(root, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = newSampler(t, fs).Capture(100, false)
	if err == nil || !strings.Contains(err.Error(), "101/stat") || !strings.Contains(err.Error(), "field 5") {
		t.Errorf("err = %v, want one naming 101/stat and field 5", err)
	}
}

func TestParseStatEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		comm     string
		ppid     int
		ok       bool
	}{
		{"plain", "7 (sh) S 1 7 7 0 -1 0 1 0 2 0 3 4 0 0 20 0 1 0 5 6 7 8", "sh", 1, true},
		{"comm with spaces and parens", "7 (a) (b c) S 1 7 7 0 -1 0 1 0 2 0 3 4 0 0 20 0 1 0 5 6 7 8\n", "a) (b c", 1, true},
		{"empty", "", "", 0, false},
		{"no comm", "7 sh S 1", "", 0, false},
		{"truncated", "7 (sh) S 1 7 7", "", 0, false},
		{"negative ppid", "7 (sh) S -1 7 7 0 -1 0 1 0 2 0 3 4 0 0 20 0 1 0 5 6 7 8", "", 0, false},
	} {
		st, err := parseStat([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if tc.ok && (string(st.comm) != tc.comm || st.ppid != tc.ppid || st.utime != 3 || st.stime != 4 ||
			st.starttime != 5 || st.vsize != 6 || st.rss != 7 || st.minflt != 1 || st.majflt != 2) {
			t.Errorf("%s: %+v", tc.name, st)
		}
	}
}

func TestParseSmapsRollupEdgeCases(t *testing.T) {
	r, err := parseSmapsRollup(nil)
	if err != nil || r != (rollup{}) {
		t.Errorf("empty: %+v %v", r, err)
	}
	r, err = parseSmapsRollup([]byte("Rss: 4 kB\nPrivate_Dirty:   2 kB\nNewKernelField: 9 kB\nSwapPss: 1 kB"))
	if err != nil || r.rss != 4096 || r.privateDirty != 2048 || r.swapPss != 1024 {
		t.Errorf("short: %+v %v", r, err)
	}
	if _, err := parseSmapsRollup([]byte("Rss: lots kB\n")); err == nil {
		t.Error("bad value: no error")
	}
}

func TestSingleProcessReadings(t *testing.T) {
	fs := procFS(t)
	ps := uint64(os.Getpagesize())
	if r, err := fs.Resident(101); err != nil || r != 2500*ps {
		t.Errorf("Resident(101) = %d, %v", r, err)
	}
	if r, err := fs.Resident(104); err != nil || r != 0 {
		t.Errorf("Resident(zombie) = %d, %v", r, err)
	}
	if p, err := fs.Private(101); err != nil || p != (2500+2492)*1024 {
		t.Errorf("Private(101) = %d, %v", p, err)
	}
	if p, err := fs.Private(104); err != nil || p != 0 {
		t.Errorf("Private(zombie) = %d, %v", p, err)
	}
	m, err := fs.MemoryOf(101)
	if err != nil || m.MapCount != 195 || m.PrivateSize() != (2500+2492)*1024 || m.MinorFaults != 1101 {
		t.Errorf("MemoryOf(101) = %+v, %v", m, err)
	}
	if _, err := fs.MemoryOf(103); !errors.Is(err, ErrNotFound) {
		t.Errorf("MemoryOf(vanished) err = %v", err)
	}
	for _, f := range []func(int) (uint64, error){fs.Resident, fs.Private} {
		if _, err := f(999); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "999") {
			t.Errorf("missing pid err = %v", err)
		}
	}
}

func TestHostMemory(t *testing.T) {
	const k = 1024
	for _, tc := range []struct {
		fixture     string
		total, free uint64
		source      string
		cgroup      string // suffix of the limiting cgroup directory
	}{
		{"nocgroup", 8000000 * k, 4000000 * k, SourceMeminfo, ""},
		{"cgroup1-limit", 536870912, 536870912 - 134217728, SourceCgroup1, "memory/docker/abc"},
		{"cgroup1-nolimit", 8000000 * k, 4000000 * k, SourceMeminfo, ""},
		{"cgroup2-limit", 268435456, 268435456 - 209715200, SourceCgroup2, "sys/system.slice"},
		{"cgroup2-nolimit", 8000000 * k, 4000000 * k, SourceMeminfo, ""},
		{"cgroup2-namespaced", 536870912, 0, SourceCgroup2, "cgroup2-namespaced/sys"},
	} {
		h, err := fixtureFS(t, tc.fixture).HostMemory()
		if err != nil {
			t.Errorf("%s: %v", tc.fixture, err)
			continue
		}
		if h.Total != tc.total || h.Free != tc.free || h.Source != tc.source || !strings.HasSuffix(h.Cgroup, tc.cgroup) {
			t.Errorf("%s: %+v, want total %d free %d source %s cgroup …%s", tc.fixture, h, tc.total, tc.free, tc.source, tc.cgroup)
		}
	}
	_, err := fixtureFS(t, "cgroup2-bad").HostMemory()
	if err == nil || !strings.Contains(err.Error(), "app/memory.max") || !strings.Contains(err.Error(), "lots") {
		t.Errorf("bad memory.max: err = %v", err)
	}
}

func TestKeptFiles(t *testing.T) {
	if !canKeepOpen {
		t.Skip("files are not kept open on this system")
	}
	want, err := newSampler(t, procFS(t)).Capture(100, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		max      int
		wantOpen int
	}{
		{0, 8 + 5}, // a stat per listed pid but 103, a cmdline per tree member
		{3, 3},
		{-1, 0},
	} {
		s := &Sampler{FS: procFS(t), MaxOpenFiles: tc.max}
		for i := 0; i < 2; i++ {
			got, err := s.Capture(100, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || *got[101] != *want[101] {
				t.Errorf("max %d, capture %d: %v, 101 = %+v", tc.max, i, keys(got), got[101])
			}
		}
		if s.nOpen.Load() != int64(tc.wantOpen) {
			t.Errorf("max %d: %d files open, want %d", tc.max, s.nOpen.Load(), tc.wantOpen)
		}
		s.Close()
		if s.nOpen.Load() != 0 || len(s.files) != 0 {
			t.Errorf("after Close: %d open, %d kept", s.nOpen.Load(), len(s.files))
		}
	}
}

// A kept stat file that reads empty or fails (as /proc files do with ESRCH
// once their process is reaped) is closed and the file reopened by path:
// the pid may belong to a new process.
func TestKeptFileOfExitedProcess(t *testing.T) {
	if !canKeepOpen {
		t.Skip("files are not kept open on this system")
	}
	s := newSampler(t, procFS(t))
	if _, err := s.Capture(100, false); err != nil {
		t.Fatal(err)
	}
	open := s.nOpen.Load()
	null, err := openFD(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	f := s.files[101]
	closeFD(f.stat)
	f.stat = null
	s.files[101] = f
	got, err := s.Capture(100, false)
	if err != nil {
		t.Fatal(err)
	}
	if got[101] == nil || got[101].Command != "ruby worker.rb --name a b" {
		t.Fatalf("101 after reopen = %+v", got[101])
	}
	// The stale descriptor was closed and replaced by one on 101/stat.
	if s.nOpen.Load() != open {
		t.Errorf("%d files open, want %d", s.nOpen.Load(), open)
	}
	b, err := preadFD(s.files[101].stat, "101/stat", nil, maxStat)
	if err != nil || !strings.HasPrefix(string(b), "101 (worker") {
		t.Errorf("kept 101/stat reads %q, %v", b, err)
	}
}
