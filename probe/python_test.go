package probe

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// startPythonServer runs python3 -m http.server on a free loopback port,
// serving dir, and returns its base URL and a function that kills it and
// waits (also called at the test's end).
func startPythonServer(t *testing.T, dir string) (string, func()) {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	cmd := exec.Command(python, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = nil // its access log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() {
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cmd.Process.Kill()
			<-read // EOF: it is dead
			cmd.Wait()
		})
	}
	t.Cleanup(stop)
	select {
	case line := <-lines:
		// "Serving HTTP on 127.0.0.1 port 40527 (http://127.0.0.1:40527/) ..."
		m := regexp.MustCompile(`\(http://([0-9.:]+)/\)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("python3 said %q", line)
		}
		return "http://" + m[1], stop
	case <-time.After(wait):
		t.Fatal("python3 -m http.server did not start")
	}
	return "", nil
}

func TestHTTPOnPythonServer(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "healthz"), []byte("ok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base, kill := startPythonServer(t, dir)
	clk := newFakeClock()
	s := newScheduler(context.Background(), Options{}, clk)
	defer s.Close()
	spec := func(path string) Spec {
		return Spec{HTTP: &HTTP{URL: base + path}, Interval: time.Second, Timeout: wait, FailureThreshold: 2}
	}
	healthy, err := s.Add(spec("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	missing, err := s.Add(spec("/missing"))
	if err != nil {
		t.Fatal(err)
	}
	// One round of both, in either order.
	round := func() map[Handle]Result {
		t.Helper()
		got := map[Handle]Result{}
		for range 2 {
			r := next(t, s)
			got[r.Handle] = r
		}
		return got
	}
	for i := range 3 {
		if i > 0 {
			clk.Advance(time.Second)
		}
		got := round()
		if r := got[healthy]; !r.Passed || r.Consecutive != i+1 || r.Status != StatusPassing {
			t.Fatalf("round %d: /healthz: %+v", i, r)
		}
		r := got[missing]
		if r.Passed || r.Consecutive != i+1 || r.Err == nil || !strings.HasPrefix(r.Err.Error(), "status 404, want 200-399") {
			t.Fatalf("round %d: /missing: %+v", i, r)
		}
		if want := map[bool]Status{false: StatusUnknown, true: StatusFailing}[i >= 1]; r.Status != want {
			t.Fatalf("round %d: /missing status %v, want %v", i, r.Status, want)
		}
	}
	// The server dies: /healthz fails twice, then is failing.
	kill()
	for i := range 2 {
		clk.Advance(time.Second)
		r := round()[healthy]
		if r.Passed || r.Consecutive != i+1 || !strings.Contains(r.Err.Error(), "connection refused") {
			t.Fatalf("after the kill, attempt %d: %+v", i, r)
		}
		if (r.Status == StatusFailing) != (i == 1) || r.Changed != (i == 1) {
			t.Fatalf("after the kill, attempt %d: status %v changed %v", i, r.Status, r.Changed)
		}
	}
}
