//go:build linux

package container

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/notify"
	"github.com/vigild/vigil/probe"
)

func TestBackoff(t *testing.T) {
	s := Spec{RestartDelay: 100 * time.Millisecond, RestartDelayMax: time.Second, StableAfter: 10 * time.Second}
	noJitter := func() float64 { return 0 }
	var b backoff
	want := []time.Duration{0, 100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.next(time.Second, s, noJitter); got != w*time.Millisecond {
			t.Errorf("failure %d: delay %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	// A run that lasted StableAfter resets: restart at once, then 100ms.
	if got := b.next(10*time.Second, s, noJitter); got != 0 {
		t.Errorf("after a stable run: %v, want 0", got)
	}
	if got := b.next(0, s, noJitter); got != 100*time.Millisecond {
		t.Errorf("second failure after reset: %v", got)
	}
	// Jitter takes off at most 20%.
	var j backoff
	j.next(0, s, noJitter)
	if got := j.next(0, s, func() float64 { return 0.999999 }); got < 80*time.Millisecond || got > 100*time.Millisecond {
		t.Errorf("jittered delay %v, want in [80ms, 100ms]", got)
	}
	// Many failures do not overflow.
	var big backoff
	for range 200 {
		if d := big.next(0, s, noJitter); d < 0 || d > time.Second {
			t.Fatalf("delay %v out of range", d)
		}
	}
}

func TestRate(t *testing.T) {
	var r rate
	t0 := time.Unix(1000, 0)
	for i := range 30 {
		r.add(t0.Add(time.Duration(i) * time.Second))
	}
	if got := r.perSecond(t0.Add(29 * time.Second)); got != 0.5 {
		t.Errorf("30 events in 60s: %v/s, want 0.5", got)
	}
	if got := r.perSecond(t0.Add(75 * time.Second)); got != 14.0/60 {
		t.Errorf("after 75s: %v/s, want %v", got, 14.0/60)
	}
	if got := r.perSecond(t0.Add(200 * time.Second)); got != 0 {
		t.Errorf("after 200s: %v", got)
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		ws                         syscall.WaitStatus
		success, segv, abort, kill bool
		str                        string
	}{
		{0, true, false, false, false, "exit 0"},
		{3 << 8, false, false, false, false, "exit 3"},
		{syscall.WaitStatus(syscall.SIGSEGV) | 0x80, false, true, false, false, "signal segmentation fault (core dumped)"},
		{syscall.WaitStatus(syscall.SIGABRT), false, false, true, false, "signal aborted"},
		{syscall.WaitStatus(syscall.SIGKILL), false, false, false, true, "signal killed"},
	} {
		e := exitStatusOf(tc.ws)
		if e.Success() != tc.success || e.Segfault() != tc.segv || e.Aborted() != tc.abort || e.Killed() != tc.kill || e.String() != tc.str {
			t.Errorf("%#x: %+v %q", uint32(tc.ws), e, e.String())
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2"}, "A=3", "C=4", "B=5")
	if strings.Join(got, ",") != "A=3,B=5,C=4" {
		t.Errorf("mergeEnv = %v", got)
	}
}

func TestChildEnv(t *testing.T) {
	inherited := inheritedEnv([]string{"PATH=/bin", "NOTIFY_SOCKET=/run/x", "HOME=/a", "NOTIFY_PIPE=7", "WATCHDOG_USEC=1", "HOME=/b", "NOEQUALS"})
	if got := strings.Join(inherited, ","); got != "PATH=/bin,HOME=/b,NOEQUALS" {
		t.Errorf("inheritedEnv = %v", got)
	}
	got := childEnv(inherited, []string{"A=1", "NOTIFY_LOG=/tmp/l", "PATH=/usr/bin", "NOEQUALS=x", "A=2", "PATHX=y"})
	if strings.Join(got, ",") != "PATH=/usr/bin,HOME=/b,NOEQUALS=x,A=2,NOTIFY_LOG=/tmp/l,PATHX=y,NOTIFY_PIPE=3" {
		t.Errorf("childEnv = %v", got)
	}
	if strings.Join(inherited, ",") != "PATH=/bin,HOME=/b,NOEQUALS" {
		t.Errorf("childEnv changed what it was given: %v", inherited)
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
}

// fire runs the alarms due at now on the container's loop.
func fire(c *Container, now time.Time) { c.do(func() { c.fireAlarms(now) }) }

// alarmsAt lists the times of the alarms scheduled, earliest first.
func alarmsAt(c *Container) []time.Time {
	var out []time.Time
	c.do(func() {
		for _, a := range c.st.alarms {
			out = append(out, a.at)
		}
	})
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// TestClocksExact drives the readiness clocks with an injected clock; the
// real timer is off (manual alarms), the alarms are fired by hand.
func TestClocksExact(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	clk := &fakeClock{now: t0}
	silent := helperSpec("silent", "silent", 1)
	silent.StartupTimeout = 10 * time.Second
	silent.Restart = false
	ready := helperSpec("ready", "ready", 1)
	ready.HealthCheckTimeout = 5 * time.Second
	ready.Restart = false
	pol := new(recordingPolicy)
	c := startContainer(t, []Spec{silent, ready}, Options{Policy: pol, CheckInterval: time.Nanosecond, now: clk.Now, manualAlarms: true})
	eventually(t, "ready child ready", func() bool { return c.Children()[1].State == StateReady })

	// The silent child may have sent nothing; the ready one said ready at t0.
	fire(c, t0.Add(5*time.Second))
	if n := pol.count("startup") + pol.count("health"); n != 0 {
		t.Fatalf("clocks failed at exactly their timeout: %v", pol.calls())
	}
	// A message at t0+3s resets the ready child's clock.
	clk.set(t0.Add(3 * time.Second))
	var p *proc
	c.do(func() { p = c.st.services[1].instances[0].cur })
	c.do(func() { c.onMessage(p, notify.Message{Healthy: true}) })
	fire(c, t0.Add(8*time.Second))
	if pol.count("health") != 0 {
		t.Fatalf("health check failed though a message reset the clock")
	}
	fire(c, t0.Add(8*time.Second+time.Millisecond))
	if pol.count("health") != 1 {
		t.Fatalf("health check did not fail 5s+1ms after the last message: %v", pol.calls())
	}
	fire(c, t0.Add(10*time.Second+time.Millisecond))
	if pol.count("startup") != 1 {
		t.Fatalf("startup did not fail after 10s+1ms: %v", pol.calls())
	}
	eventually(t, "both killed", func() bool { return pol.count("exit") == 2 })
	for _, k := range c.Children() {
		if k.LastExit == nil || !k.LastExit.Killed() {
			t.Errorf("child %+v not killed", k)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err == nil || !strings.Contains(err.Error(), "startup timeout") {
		t.Errorf("WaitReady = %v", err)
	}
}

// TestNoAlarmWithoutTimeouts: a container whose children are all ready and
// have no health-check timeout has nothing scheduled, so it never wakes.
func TestNoAlarmWithoutTimeouts(t *testing.T) {
	c := startContainer(t, []Spec{helperSpec("a", "ready", 1)}, Options{CheckInterval: time.Millisecond})
	waitReady(t, c)
	if got := alarmsAt(c); len(got) != 0 {
		t.Errorf("alarms %v scheduled though no service has a timeout", got)
	}
	s := helperSpec("b", "ready", 1)
	s.HealthCheckTimeout = time.Hour
	c2 := startContainer(t, []Spec{s}, Options{Output: io.Discard})
	waitReady(t, c2)
	if got := alarmsAt(c2); len(got) != 1 {
		t.Errorf("alarms %v, want one health clock", got)
	}
}

// stopOnStartupFailure stops the container when a startup clock fails.
type stopOnStartupFailure struct{ DefaultPolicy }

func (stopOnStartupFailure) StartupFailed(ChildInfo) Action { return StopContainer }

func TestPolicyStopsContainerOnClock(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	clk := &fakeClock{now: t0}
	s := helperSpec("silent", "silent", 2)
	s.StartupTimeout = time.Second
	c := startContainer(t, []Spec{s}, Options{Policy: stopOnStartupFailure{}, now: clk.Now, manualAlarms: true})
	eventually(t, "started", func() bool { return len(pidsOf(c.Children())) == 2 })
	fire(c, t0.Add(2*time.Second))
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("container not stopped")
	}
	if !errors.Is(c.Err(), ErrStoppedByPolicy) {
		t.Errorf("Err = %v", c.Err())
	}
	for _, k := range c.Children() {
		if k.PID != 0 || k.State != StateExited {
			t.Errorf("child %+v", k)
		}
	}
}

// TestClockAlarms: a child's clock is scheduled just past its deadline; a
// ready child without a health-check timeout has none.
func TestClockAlarms(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	clk := &fakeClock{now: t0}
	ready := helperSpec("ready", "ready", 1)
	ready.StartupTimeout = 30 * time.Second // runs only until ready
	c := startContainer(t, []Spec{ready}, Options{now: clk.Now, manualAlarms: true})
	eventually(t, "ready", func() bool { return c.Children()[0].State == StateReady })
	if got := alarmsAt(c); len(got) != 0 {
		t.Errorf("every child ready, no health-check timeout: alarms %v", got)
	}

	watched := helperSpec("watched", "ready", 1)
	watched.HealthCheckTimeout = 5 * time.Second
	c2 := startContainer(t, []Spec{watched}, Options{now: clk.Now, manualAlarms: true})
	eventually(t, "ready", func() bool { return c2.Children()[0].State == StateReady })
	if got, want := alarmsAt(c2), t0.Add(5*time.Second+time.Millisecond); len(got) != 1 || !got[0].Equal(want) {
		t.Errorf("health clock from t0: alarms %v, want %v", got, want)
	}
}

// TestWaitExitBlocking: the fallback wait returns once the child has
// exited and leaves it to be reaped.
func TestWaitExitBlocking(t *testing.T) {
	cmd := exec.Command("sleep", "0.2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := waitExitBlocking(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Errorf("returned before the child exited")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("the child was not left to reap: %v", err)
	}
}

// TestVersion: reading changes nothing, heartbeats change nothing; an exit
// and its restart do.
func TestVersion(t *testing.T) {
	s := helperSpec("web", "ready", 1, "HEARTBEAT=20ms")
	s.HealthCheckTimeout = time.Hour
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard})
	waitReady(t, c)
	time.Sleep(100 * time.Millisecond) // settled
	v := c.Version()
	for range 5 {
		c.Children()
		c.Specs()
		c.Statistics()
	}
	time.Sleep(200 * time.Millisecond) // heartbeats
	if got := c.Version(); got != v {
		t.Errorf("version %d -> %d with nothing but reads and heartbeats", v, got)
	}
	pid := c.Children()[0].PID
	_ = killPID(pid)
	eventually(t, "replaced", func() bool { k := c.Children()[0]; return k.PID != pid && k.State == StateReady })
	if got := c.Version(); got <= v {
		t.Errorf("version %d -> %d across an exit and a restart", v, got)
	}
}

// forInstance expands the placeholders wherever they are, and leaves a
// spec without any as it is.
func TestForInstance(t *testing.T) {
	plain := Spec{Name: "web", Command: []string{"/bin/web", "--x"}, Env: []string{"A=1"}}
	if got := plain.forInstance(2); !slices.Equal(got.Command, plain.Command) || !slices.Equal(got.Env, plain.Env) {
		t.Errorf("plain: %v %v", got.Command, got.Env)
	}
	for _, tc := range []struct {
		name string
		spec Spec
		get  func(Spec) string
		want string
	}{
		{"command", Spec{Name: "web", Command: []string{"/bin/web", "--id=${service}.${instance}"}},
			func(s Spec) string { return s.Command[1] }, "--id=web.2"},
		{"env", Spec{Name: "web", Port: 8000, Command: []string{"/bin/web"}, Env: []string{"P=${port}"}},
			func(s Spec) string { return s.Env[0] }, "P=8002"},
		{"exec probe's env only", Spec{Name: "web", Command: []string{"/bin/web"},
			HealthProbe: &probe.Spec{Exec: &probe.Exec{Argv: []string{"/bin/check"}, Env: []string{"I=${instance}"}}}},
			func(s Spec) string { return s.HealthProbe.Exec.Env[0] }, "I=2"},
		{"tcp probe", Spec{Name: "web", Port: 9000, Command: []string{"/bin/web"},
			ReadinessProbe: &probe.Spec{TCP: &probe.TCP{Address: "127.0.0.1:${port}"}}},
			func(s Spec) string { return s.ReadinessProbe.TCP.Address }, "127.0.0.1:9002"},
	} {
		if got := tc.get(tc.spec.forInstance(2)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestClocksAfterAStall: a clock that runs out long after its deadline
// (more than the check interval and a second: the container was not
// running) fails no child; every clock starts again from then, and a
// child that stays silent fails one timeout later. A clock late by less
// (a busy loop; a clock checked again no sooner than the check interval)
// is no stall.
func TestClocksAfterAStall(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	clk := &fakeClock{now: t0}
	watched := helperSpec("watched", "ready", 2)
	watched.HealthCheckTimeout = 5 * time.Second
	watched.Restart = false
	pol := new(recordingPolicy)
	c := startContainer(t, []Spec{watched}, Options{Policy: pol, CheckInterval: time.Second, now: clk.Now, manualAlarms: true})
	eventually(t, "ready", func() bool {
		k := c.Children()
		return k[0].State == StateReady && k[1].State == StateReady
	})
	// Paused from t0+1s to t0+30s: the clocks (due at t0+5s) run out 25 s
	// late.
	resumed := t0.Add(30 * time.Second)
	clk.set(resumed)
	fire(c, resumed)
	if n := pol.count("health"); n != 0 {
		t.Fatalf("health checks failed for a stall of the container: %v", pol.calls())
	}
	if got, want := alarmsAt(c), resumed.Add(5*time.Second+time.Millisecond); len(got) != 2 || !got[0].Equal(want) || !got[1].Equal(want) {
		t.Fatalf("after the stall: alarms %v, want both at %v", got, want)
	}
	// One child speaks a second after the stall, then falls silent; its
	// check comes 1.5 s late (a busy machine), within the check interval
	// and a second: no stall, it fails.
	var p *proc
	c.do(func() { p = c.st.services[0].instances[0].cur })
	clk.set(resumed.Add(time.Second))
	c.do(func() { c.onMessage(p, notify.Message{Healthy: true}) })
	fire(c, resumed.Add(5*time.Second+time.Millisecond)) // the other fails; this one re-armed
	if pol.count("health") != 1 {
		t.Fatalf("the silent child did not fail one timeout after the stall: %v", pol.calls())
	}
	fire(c, resumed.Add(7500*time.Millisecond)) // 1.499 s past its deadline (t+6s+1ms)
	if pol.count("health") != 2 {
		t.Fatalf("a clock late by less than the check interval and a second was taken for a stall: %v", pol.calls())
	}
}
