//go:build linux

package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/testutil"

	"github.com/vigild/vigil/notify"
)

func init() {
	// port-holder listens on 127.0.0.1:$PORT (failing if it is taken),
	// writes its argv and PORT into DIR/$VIGIL_INSTANCE, then is ready.
	helpers["port-holder"] = func(args []string) int {
		c := notifier()
		l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer l.Close()
		_ = os.WriteFile(filepath.Join(os.Getenv("DIR"), os.Getenv(EnvInstance)), []byte(strings.Join(args, " ")+" PORT="+os.Getenv("PORT")+" SELF="+os.Getenv("SELF")), 0o644)
		_ = notify.Ready(c, "")
		return waitStop(c)
	}
}

// TestPortService: each instance gets its port (PORT, ${port}) and its
// number (${instance}); a restart stops an instance before starting its
// replacement, which could not bind the port otherwise.
func TestPortService(t *testing.T) {
	dir := t.TempDir()
	base := testutil.FreePorts(t, 2)
	s := helperSpec("web", "port-holder", 2, "DIR="+dir, "SELF=${service}-${instance}")
	s.Command = append(s.Command, "--port=${port}", "--instance=${instance}")
	s.Port = base
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard})
	waitReady(t, c)
	for i := 0; i < 2; i++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i)))
		want := fmt.Sprintf("--port=%d --instance=%d PORT=%d SELF=web-%d", base+i, i, base+i, i)
		if err != nil || string(b) != want {
			t.Errorf("instance %d saw %q (%v), want %q", i, b, err, want)
		}
	}
	old := pidsOf(c.Children())
	var most atomic.Int32
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			per := map[int]int32{}
			for _, k := range c.Children() {
				if k.PID != 0 {
					per[k.Instance]++
				}
			}
			for _, n := range per {
				if n > most.Load() {
					most.Store(n)
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	err := c.RestartChildren(context.Background(), "web", -1)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if most.Load() > 1 {
		t.Errorf("an instance had %d processes at once: its port cannot be shared", most.Load())
	}
	now := pidsOf(c.Children())
	if len(now) != 2 || slices.Contains(now, old[0]) || slices.Contains(now, old[1]) {
		t.Errorf("pids %v after the restart of %v", now, old)
	}
	if st := c.Statistics()[0]; st.Failures != 0 {
		t.Errorf("failures %d: a replacement could not bind its port", st.Failures)
	}
}

// TestRollingReplace: a rolling replacement keeps all but one instance
// ready at every moment.
func TestRollingReplace(t *testing.T) {
	s := helperSpec("web", "ready", 3, "READY_DELAY=50ms")
	s.Rolling = true
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard})
	waitReady(t, c)
	old := pidsOf(c.Children())
	least := watchLeast(c, "web")
	s2 := s
	s2.Env = append(slices.Clone(s.Env), "GENERATION=2")
	err := c.ReplaceService(context.Background(), s2)
	if n := least(); n < 2 {
		t.Errorf("at some moment only %d of 3 were ready", n)
	}
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the old ones gone", func() bool { return len(c.Children()) == 3 })
	for _, pid := range pidsOf(c.Children()) {
		if slices.Contains(old, pid) {
			t.Errorf("pid %d not replaced", pid)
		}
	}
}

// TestStopStartService: a stopped instance stays stopped (also through a
// replacement of its service's spec, as a reload does) until started; the
// other instances and services are not touched.
func TestStopStartService(t *testing.T) {
	web, other := helperSpec("web", "ready", 2), helperSpec("other", "ready", 1)
	c := startContainer(t, []Spec{web, other}, Options{Output: io.Discard})
	waitReady(t, c)
	before := c.Children()
	if err := c.StopService(context.Background(), "web", 1); err != nil {
		t.Fatal(err)
	}
	k := c.Children()
	if k[1].State != StateStopped || k[1].PID != 0 || k[0].PID != before[0].PID || k[2].PID != before[2].PID {
		t.Fatalf("after stopping web.1: %+v", k)
	}
	if err := c.StopService(context.Background(), "web", -1); err != nil {
		t.Fatal(err)
	}
	web2 := web
	web2.Env = append(slices.Clone(web.Env), "GENERATION=2")
	if err := c.ReplaceService(context.Background(), web2); err != nil {
		t.Fatal(err)
	}
	if k := c.Children(); k[0].State != StateStopped || k[1].State != StateStopped || k[2].PID != before[2].PID {
		t.Fatalf("a stopped service was started by a replacement: %+v", k)
	}
	if err := c.StartService(context.Background(), "web", -1); err != nil {
		t.Fatal(err)
	}
	if k := c.Children(); countState(k, "web", StateReady) != 2 || k[2].PID != before[2].PID {
		t.Errorf("after start: %+v", k)
	}
	if err := c.StopService(context.Background(), "nope", -1); !errors.Is(err, ErrUnknownService) {
		t.Errorf("stop nope: %v", err)
	}
}

// TestStartLimit: an instance started too often within the interval has
// failed, is not restarted, and StartService tries again.
func TestStartLimit(t *testing.T) {
	s := helperSpec("crashy", "crash", 1)
	s.StartLimitBurst, s.StartLimitInterval = 3, time.Minute
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard})
	eventually(t, "failed", func() bool { return c.Children()[0].State == StateFailed })
	k := c.Children()[0]
	if !strings.Contains(k.LastError, "start_limit") || c.Statistics()[0].Spawns != 3 {
		t.Errorf("child = %+v, spawns %d", k, c.Statistics()[0].Spawns)
	}
	time.Sleep(300 * time.Millisecond)
	if n := c.Statistics()[0].Spawns; n != 3 {
		t.Errorf("%d spawns: a failed instance was restarted", n)
	}
	err := c.StartService(context.Background(), "crashy", 0)
	if !errors.Is(err, ErrNotReady) {
		t.Errorf("start of a crashing service = %v, want ErrNotReady", err)
	}
	if n := c.Statistics()[0].Spawns; n < 4 {
		t.Errorf("%d spawns: start did not try again", n)
	}
}

// TestScale: scaling adds and removes instances without touching the
// others.
func TestScale(t *testing.T) {
	c := startContainer(t, []Spec{helperSpec("web", "ready", 2)}, Options{Output: io.Discard})
	waitReady(t, c)
	before := pidsOf(c.Children())
	if err := c.Scale(context.Background(), "web", 4); err != nil {
		t.Fatal(err)
	}
	k := c.Children()
	if countState(k, "web", StateReady) != 4 || k[0].PID != before[0] || k[1].PID != before[1] {
		t.Fatalf("scaled up: %+v", k)
	}
	third := k[2].PID
	if err := c.Scale(context.Background(), "web", 1); err != nil {
		t.Fatal(err)
	}
	k = c.Children()
	if len(k) != 1 || k[0].PID != before[0] || alive(third) {
		t.Errorf("scaled down: %+v (pid %d alive: %v)", k, third, alive(third))
	}
}
