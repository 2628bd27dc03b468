//go:build linux

package procmetrics

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTree starts sh (child of the test) running sleep (grandchild) and
// returns both pids once the grandchild is visible. Cleanup kills the
// grandchild first, so that sh reaps it, then waits for sh: no orphan, no
// zombie.
func startTree(t *testing.T, s *Sampler) (child, grandchild int, cmd *exec.Cmd) {
	t.Helper()
	cmd = exec.Command("sh", "-c", "sleep 300 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child = cmd.Process.Pid
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return // the test waited for it
		}
		if grandchild != 0 {
			syscall.Kill(grandchild, syscall.SIGKILL)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-child, syscall.SIGKILL)
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for grandchild == 0 {
		if time.Now().After(deadline) {
			t.Fatal("sleep grandchild never appeared under sh")
		}
		got, err := s.Capture(child, false)
		if err != nil {
			t.Fatal(err)
		}
		for pid, p := range got {
			if p.ParentProcessID == child && p.Command == "sleep 300" {
				grandchild = pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return child, grandchild, cmd
}

func TestCaptureRealTree(t *testing.T) {
	s := newSampler(t, DefaultFS())
	child, gc, cmd := startTree(t, s)
	self := os.Getpid()

	got, err := s.Capture(self, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{self, child, gc} {
		if got[pid] == nil {
			t.Fatalf("pid %d missing from the capture under %d: %v", pid, self, keys(got))
		}
	}
	c, g := got[child], got[gc]
	if c.ParentProcessID != self || c.ProcessGroupID != child || !strings.HasPrefix(c.Command, "sh -c sleep 300") {
		t.Errorf("child = %+v", c)
	}
	if g.ParentProcessID != child || g.ProcessGroupID != child {
		t.Errorf("grandchild = %+v", g)
	}
	for _, p := range []*Process{c, g, got[self]} {
		if p.ResidentSize == 0 || p.VirtualSize < p.ResidentSize || p.ElapsedTime < 0 || p.ElapsedTime > 3600 ||
			p.ProcessorUtilization < 0 || p.Memory == nil || p.TotalSize != p.Memory.ProportionalSize {
			t.Errorf("implausible %+v", p)
			continue
		}
		m := p.Memory
		if m.MapCount < 5 || m.ResidentSize == 0 || m.ProportionalSize > m.ResidentSize ||
			m.PrivateSize() == 0 || m.PrivateSize() > m.ResidentSize || m.MinorFaults == 0 {
			t.Errorf("implausible memory of %d: %+v", p.ProcessID, *m)
		}
	}
	if got[self].ProcessorTime <= 0 {
		t.Errorf("test process processor time = %v", got[self].ProcessorTime)
	}

	// Single-process readings.
	fs := s.FS
	if r, err := fs.Resident(gc); err != nil || r == 0 || r > 1<<30 {
		t.Errorf("Resident(sleep) = %d, %v", r, err)
	}
	if p, err := fs.Private(gc); err != nil || p == 0 || p > g.Memory.ResidentSize*2 {
		t.Errorf("Private(sleep) = %d, %v", p, err)
	}
	if m, err := fs.MemoryOf(gc); err != nil || m.MapCount < 5 {
		t.Errorf("MemoryOf(sleep) = %+v, %v", m, err)
	}

	// Gone processes: skipped by a capture, ErrNotFound when read alone.
	syscall.Kill(gc, syscall.SIGKILL)
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
	}
	got, err = s.Capture(self, true)
	if err != nil {
		t.Fatal(err)
	}
	if got[child] != nil || got[gc] != nil {
		t.Errorf("exited processes still captured: %v", keys(got))
	}
	if _, err := fs.Resident(gc); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resident(exited) err = %v", err)
	}
	if _, err := s.Capture(child, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("Capture(exited) err = %v", err)
	}
}

func TestRealUtilizationOverInterval(t *testing.T) {
	s := newSampler(t, DefaultFS())
	self := os.Getpid()
	if _, err := s.Capture(self, false); err != nil {
		t.Fatal(err)
	}
	// Keep one core busy for 400 ms: the utilisation over that interval
	// must be well above idle even on a shared machine.
	x := 0
	for end := time.Now().Add(400 * time.Millisecond); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			x += i
		}
	}
	_ = x
	got, err := s.Capture(self, false)
	if err != nil {
		t.Fatal(err)
	}
	if u := got[self].ProcessorUtilization; u < 20 || u > 100*float64(256) {
		t.Errorf("utilisation over a busy interval = %v%%", u)
	}
}

func TestRealHostMemory(t *testing.T) {
	h, err := DefaultFS().HostMemory()
	if err != nil {
		t.Fatal(err)
	}
	if h.Total == 0 || h.Free > h.Total {
		t.Errorf("host memory = %+v", h)
	}
	switch h.Source {
	case SourceMeminfo, SourceCgroup1, SourceCgroup2:
	default:
		t.Errorf("source = %q", h.Source)
	}
	t.Logf("host memory: %+v", h)
}

func TestSamplerConcurrentUse(t *testing.T) {
	s := newSampler(t, DefaultFS())
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Capture(os.Getpid(), i%2 == 0); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRealNoFileLeak(t *testing.T) {
	count := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := count()
	s := &Sampler{FS: DefaultFS()}
	for i := 0; i < 2; i++ {
		if _, err := s.Capture(1, true); err != nil {
			t.Fatal(err)
		}
	}
	if n := int(s.nOpen.Load()); n == 0 || count() < before+n {
		t.Errorf("%d files kept, %d descriptors more than before", s.nOpen.Load(), count()-before)
	}
	s.Close()
	if after := count(); after != before {
		t.Errorf("%d descriptors open after Close, %d before", after, before)
	}
}
