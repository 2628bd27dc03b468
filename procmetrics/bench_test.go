//go:build linux

package procmetrics

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

const benchProcesses = 1000

// syntheticTree writes a proc tree of n processes into a temporary
// directory: pid 1000 and its descendants, ten children per process, each
// with the stat, cmdline, smaps_rollup and maps contents of this very
// process (pid and ppid rewritten), so file sizes are real-looking.
func syntheticTree(b testing.TB, n int) (root string, rootPid int) {
	b.Helper()
	read := func(name string) []byte {
		data, err := os.ReadFile("/proc/self/" + name)
		if err != nil {
			b.Skipf("no real /proc to copy from: %v", err)
		}
		return data
	}
	statTail := read("stat")
	statTail = statTail[bytes.LastIndexByte(statTail, ')')+4:] // after ") S "
	statTail = statTail[bytes.IndexByte(statTail, ' '):]       // after ppid
	cmdline, rollup, maps, statm := read("cmdline"), read("smaps_rollup"), read("maps"), read("statm")

	root = b.TempDir()
	if err := os.WriteFile(root+"/uptime", []byte("100000.00 150000.00\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	rootPid = 1000
	for i := 0; i < n; i++ {
		pid := rootPid + i
		ppid := 1
		if i > 0 {
			ppid = rootPid + (i-1)/10
		}
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		stat := fmt.Appendf(nil, "%d (bench worker) S %d", pid, ppid)
		stat = append(stat, statTail...)
		for name, data := range map[string][]byte{
			"stat": stat, "cmdline": cmdline, "smaps_rollup": rollup, "maps": maps, "statm": statm,
		} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	return root, rootPid
}

// TestCaptureSyntheticTree checks the parallel reading of a larger tree.
func TestCaptureSyntheticTree(t *testing.T) {
	root, pid := syntheticTree(t, 300)
	fs, err := NewFS(root, "")
	if err != nil {
		t.Fatal(err)
	}
	// Remove one process's files: it vanished.
	if err := os.Remove(filepath.Join(root, "1150", "stat")); err != nil {
		t.Fatal(err)
	}
	s := newSampler(t, fs)
	for _, withMemory := range []bool{false, true} {
		got, err := s.Capture(pid+1, withMemory) // 1001: a child of the root
		if err != nil {
			t.Fatal(err)
		}
		// Under 1001 (children 1011-1020, their children 1101-1200, theirs
		// 2001-...): count by walking the generator's formula.
		want := 0
		for i := 1; i < 300; i++ {
			for a := i; a > 0; a = (a - 1) / 10 {
				if a == 1 {
					if i != 150 && !under(150, i) {
						want++
					}
					break
				}
			}
		}
		if len(got) != want {
			t.Errorf("withMemory %v: %d processes, want %d", withMemory, len(got), want)
		}
		for p, proc := range got {
			if p != pid+1 && got[proc.ParentProcessID] == nil {
				t.Errorf("%d: parent %d not in the tree", p, proc.ParentProcessID)
			}
			if (proc.Memory != nil) != withMemory {
				t.Errorf("%d: memory %v", p, proc.Memory)
			}
		}
	}
}

// under reports whether process index i descends from index a in the
// synthetic tree.
func under(a, i int) bool {
	for i > 0 {
		i = (i - 1) / 10
		if i == a {
			return true
		}
	}
	return false
}

func benchCapture(b *testing.B, fs FS, pid int, withMemory bool, want int) {
	s := newSampler(b, fs)
	if got, err := s.Capture(pid, withMemory); err != nil {
		b.Fatal(err)
	} else if len(got) < want {
		b.Fatalf("captured %d processes, want %d", len(got), want)
	}
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got, err := s.Capture(pid, withMemory)
		if err != nil {
			b.Fatal(err)
		}
		n = len(got)
	}
	b.ReportMetric(float64(n), "processes")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/process")
}

// BenchmarkCaptureSynthetic1000 captures a synthetic tree of 1,000
// processes (files on a regular filesystem, so the kernel's cost of
// generating /proc contents is not included: see BenchmarkCaptureReal*).
func BenchmarkCaptureSynthetic1000(b *testing.B) {
	root, pid := syntheticTree(b, benchProcesses)
	fs, err := NewFS(root, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("general", func(b *testing.B) { benchCapture(b, fs, pid, false, benchProcesses) })
	b.Run("memory", func(b *testing.B) { benchCapture(b, fs, pid, true, benchProcesses) })
}

// BenchmarkCaptureRealMachine captures every process of this machine (the
// tree under pid 1) from the real /proc.
func BenchmarkCaptureRealMachine(b *testing.B) {
	fs := DefaultFS()
	b.Run("general", func(b *testing.B) { benchCapture(b, fs, 1, false, 1) })
	b.Run("memory", func(b *testing.B) { benchCapture(b, fs, 1, true, 1) })
}

// BenchmarkCaptureRealTree1000 starts a real tree of 1,000 sleep processes
// under one sh and captures it from the real /proc.
func BenchmarkCaptureRealTree1000(b *testing.B) {
	n := benchProcesses - 1
	cmd := exec.Command("sh", "-c", fmt.Sprintf("i=0; while [ $i -lt %d ]; do sleep 600 & i=$((i+1)); done; wait", n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	shPid := cmd.Process.Pid
	fs := DefaultFS()
	s := newSampler(b, fs)
	defer func() {
		// Kill the sleeps first so sh reaps them, then sh.
		if got, err := s.Capture(shPid, false); err == nil {
			for pid := range got {
				if pid != shPid {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-shPid, syscall.SIGKILL)
			<-done
		}
	}()
	for deadline := time.Now().Add(60 * time.Second); ; {
		got, err := s.Capture(shPid, false)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) >= benchProcesses {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d processes started", len(got), benchProcesses)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Run("general", func(b *testing.B) { benchCapture(b, fs, shPid, false, benchProcesses) })
	b.Run("memory", func(b *testing.B) { benchCapture(b, fs, shPid, true, benchProcesses) })
}

// The parsers against prometheus/procfs on this process's real files: the
// reason for hand-written stat and smaps_rollup readers.
func BenchmarkStatHand(b *testing.B) {
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = readFile("/proc/self/stat", buf, maxStat)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := parseStat(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStatProcfs(b *testing.B) {
	p, err := procfs.Self()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Stat(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSmapsRollupHand(b *testing.B) {
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = readFile("/proc/self/smaps_rollup", buf, maxRollup)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := parseSmapsRollup(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSmapsRollupProcfs(b *testing.B) {
	p, err := procfs.Self()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ProcSMapsRollup(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResident(b *testing.B) {
	fs, pid := DefaultFS(), os.Getpid()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fs.Resident(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrivate(b *testing.B) {
	fs, pid := DefaultFS(), os.Getpid()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fs.Private(pid); err != nil {
			b.Fatal(err)
		}
	}
}
