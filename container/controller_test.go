//go:build linux

package container

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigild/vigil/notify"
)

// recordingClient is a notify.Client that keeps what it was sent.
type recordingClient struct {
	mu   sync.Mutex
	msgs []notify.Message
}

func (r *recordingClient) Send(m notify.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return nil
}

func (r *recordingClient) Close() error { return nil }

func (r *recordingClient) messages() []notify.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// exitOrder is a DefaultPolicy that records the services of exits.
type exitOrder struct {
	DefaultPolicy
	mu    sync.Mutex
	order []string
}

func (e *exitOrder) ChildExit(c ChildInfo, s ExitStatus) Action {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.order = append(e.order, c.Service)
	return Continue
}

// runController runs c until the returned stop function is called, which
// returns Run's error.
func runController(t *testing.T, c *Controller) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func pidsByService(children []ChildInfo, service string) []int {
	var out []int
	for _, c := range children {
		if c.Service == service && c.PID != 0 {
			out = append(out, c.PID)
		}
	}
	return out
}

func TestControllerReloadSwapsWithoutGap(t *testing.T) {
	sup := helperSpec("sup", "ready", 1)
	sup.Persistent = true
	web := helperSpec("web", "ready", 3, "READY_DELAY=50ms")
	client := new(recordingClient)
	pol := new(exitOrder)
	c, err := NewController([]Spec{web, sup}, ControllerOptions{Notify: client, Policy: pol, Output: new(syncBuffer)})
	if err != nil {
		t.Fatal(err)
	}
	stop := runController(t, c)
	waitReady(t, c)
	before := c.Children()
	if len(before) != 4 || countState(before, "web", StateReady) != 3 || countState(before, "sup", StateReady) != 1 {
		t.Fatalf("children = %+v", before)
	}
	oldWeb, oldSup := pidsByService(before, "web"), pidsByService(before, "sup")

	// Poll Children during the swap: web must always have a ready worker.
	pollStop := make(chan struct{})
	least := make(chan int, 1)
	go func() {
		m := 3
		for {
			select {
			case <-pollStop:
				least <- m
				return
			default:
			}
			m = min(m, countState(c.Children(), "web", StateReady))
		}
	}()
	web2 := web
	web2.Env = append(slices.Clone(web.Env), "GENERATION=2")
	_, err = c.Reload(context.Background(), []Spec{web2, sup})
	close(pollStop)
	if err != nil {
		t.Fatal(err)
	}
	if m := <-least; m < 1 {
		t.Errorf("web had %d ready workers at some point during Reload", m)
	}
	after := c.Children()
	newWeb := pidsByService(after, "web")
	if len(newWeb) != 3 || len(after) != 4 {
		t.Fatalf("after reload: %+v", after)
	}
	for _, pid := range newWeb {
		if slices.Contains(oldWeb, pid) {
			t.Errorf("web pid %d survived the reload", pid)
		}
	}
	for _, pid := range oldWeb {
		if alive(pid) {
			t.Errorf("old web pid %d still alive", pid)
		}
	}
	if got := pidsByService(after, "sup"); !slices.Equal(got, oldSup) {
		t.Errorf("persistent sup changed from %v to %v though its spec did not", oldSup, got)
	}
	st := c.Statistics()
	if st[0].Service != "web" || st[0].Spawns != 6 {
		t.Errorf("statistics across reload = %+v", st)
	}

	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	noChildren(t)
	pol.mu.Lock()
	order := slices.Clone(pol.order)
	pol.mu.Unlock()
	if len(order) == 0 || order[len(order)-1] != "sup" || slices.Index(order, "sup") != len(order)-1 {
		t.Errorf("exit order %v: want the persistent service last", order)
	}
	var got []string
	for _, m := range client.messages() {
		switch {
		case m.IsReady():
			got = append(got, "ready:"+m.Status)
		case m.Reloading:
			got = append(got, "reloading")
		case m.Stopping:
			got = append(got, "stopping")
		default:
			got = append(got, m.Status)
		}
	}
	want := []string{"Initializing controller...", "ready:Running with 4 children.", "reloading", "ready:Running with 4 children.", "stopping"}
	if !slices.Equal(got, want) {
		t.Errorf("notifications = %q, want %q", got, want)
	}
}

func TestControllerFailedReloadKeepsOld(t *testing.T) {
	web := helperSpec("web", "ready", 2)
	client := new(recordingClient)
	c, err := NewController([]Spec{web}, ControllerOptions{Notify: client, CheckInterval: 50 * time.Millisecond, Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	runController(t, c)
	waitReady(t, c)
	old := pidsByService(c.Children(), "web")

	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"crashing", helperSpec("web", "crash", 2)},
		{"never ready", func() Spec {
			s := helperSpec("web", "silent", 2)
			s.StartupTimeout = 200 * time.Millisecond
			return s
		}()},
	} {
		_, err := c.Reload(context.Background(), []Spec{tc.spec})
		if !errors.Is(err, ErrNotReady) {
			t.Fatalf("%s: Reload = %v, want ErrNotReady", tc.name, err)
		}
		kids := c.Children()
		if got := pidsByService(kids, "web"); !slices.Equal(got, old) || countState(kids, "web", StateReady) != 2 {
			t.Errorf("%s: children after failed reload = %+v, want old pids %v ready", tc.name, kids, old)
		}
	}
	if _, err := c.Reload(context.Background(), []Spec{{Name: "bad"}}); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("invalid reload = %v", err)
	}
	var errs int
	for _, m := range client.messages() {
		if m.Errno == -1 && strings.Contains(m.Status, "reload") {
			errs++
		}
	}
	if errs != 3 {
		t.Errorf("%d error notifications, want 3: %+v", errs, client.messages())
	}
}

func TestControllerPersistentChangedIsSwapped(t *testing.T) {
	sup := helperSpec("sup", "ready", 1)
	sup.Persistent = true
	c, err := NewController([]Spec{sup}, ControllerOptions{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	runController(t, c)
	waitReady(t, c)
	old := pidsByService(c.Children(), "sup")
	sup2 := sup
	sup2.Env = append(slices.Clone(sup.Env), "X=1")
	if _, err := c.Reload(context.Background(), []Spec{sup2, helperSpec("web", "ready", 1)}); err != nil {
		t.Fatal(err)
	}
	kids := c.Children()
	if got := pidsByService(kids, "sup"); len(got) != 1 || got[0] == old[0] {
		t.Errorf("sup pids %v -> %v: want swapped", old, got)
	}
	if countState(kids, "web", StateReady) != 1 {
		t.Errorf("children = %+v", kids)
	}
}

func TestControllerStartFailure(t *testing.T) {
	sup := helperSpec("sup", "ready", 1)
	sup.Persistent = true
	client := new(recordingClient)
	web := helperSpec("web", "crash", 2)
	web.Required = true
	c, err := NewController([]Spec{sup, web}, ControllerOptions{Notify: client, Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run(context.Background())
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("Run = %v, want ErrNotReady", err)
	}
	noChildren(t)
	var sawErr bool
	for _, m := range client.messages() {
		sawErr = sawErr || m.Errno == -1
		if m.IsReady() {
			t.Errorf("notified ready: %+v", m)
		}
	}
	if !sawErr {
		t.Errorf("no error notification: %+v", client.messages())
	}
	if err := c.WaitReady(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("WaitReady after failed Run = %v", err)
	}
}

// A required service fails its start as soon as one of its instances
// does, while the instances before it still start (and never become
// ready): the wait for the start does not stop looking at the first one
// still starting.
func TestControllerStartFailureBehindStarting(t *testing.T) {
	sup := helperSpec("sup", "ready", 1)
	sup.Persistent = true
	mixed := helperSpec("mixed", "silent", 3, helperEnv+"=mix-${instance}") // 0, 1 silent; 2 crashes
	mixed.Required = true
	c, err := NewController([]Spec{sup, mixed}, ControllerOptions{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = c.Run(ctx)
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "mixed.2") {
		t.Fatalf("Run = %v, want ErrNotReady for mixed.2", err)
	}
	noChildren(t)
}

// TestControllerFailingServiceStaysAlone: a service that cannot start is a
// state of that service; the others run, the controller is ready and says
// which failed, and the failed one is retried.
func TestControllerFailingServiceStaysAlone(t *testing.T) {
	sup := helperSpec("sup", "ready", 1)
	sup.Persistent = true
	client := new(recordingClient)
	bad := helperSpec("bad", "crash", 1)
	c, err := NewController([]Spec{sup, bad, helperSpec("web", "ready", 2)}, ControllerOptions{Notify: client, Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	stop := runController(t, c)
	waitReady(t, c)
	kids := c.Children()
	if countState(kids, "web", StateReady) != 2 || countState(kids, "sup", StateReady) != 1 {
		t.Errorf("children = %+v", kids)
	}
	if f := c.FailedAtStart(); len(f) != 1 || f[0].Service != "bad" || !strings.Contains(f[0].Err.Error(), "exited before it was ready") {
		t.Errorf("failed at start = %+v", f)
	}
	var ready string
	eventually(t, "the ready notification", func() bool {
		for _, m := range client.messages() {
			if m.IsReady() {
				ready = m.Status
			}
		}
		return ready != ""
	})
	if !strings.Contains(ready, "Failed: bad (") {
		t.Errorf("ready status %q does not name the failed service", ready)
	}
	eventually(t, "bad retried", func() bool { return c.Statistics()[1].Spawns >= 3 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	noChildren(t)
}

// TestControllerStrict: with Strict, any service failing at start stops
// everything, as in the original.
func TestControllerStrict(t *testing.T) {
	c, err := NewController([]Spec{helperSpec("bad", "crash", 1), helperSpec("web", "ready", 1)}, ControllerOptions{Strict: true, Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Run = %v, want ErrNotReady", err)
	}
	noChildren(t)
}

func TestControllerRestartChildren(t *testing.T) {
	sup := helperSpec("sup", "ready", 1)
	sup.Persistent = true
	c, err := NewController([]Spec{sup, helperSpec("web", "ready", 3)}, ControllerOptions{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	runController(t, c)
	waitReady(t, c)
	before := pidsByService(c.Children(), "web")
	if err := c.RestartChildren(context.Background(), "web", 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "old process gone", func() bool { return len(c.Children()) == 4 })
	after := pidsByService(c.Children(), "web")
	if after[0] != before[0] || after[2] != before[2] || after[1] == before[1] {
		t.Errorf("web pids %v -> %v: want only instance 1 replaced", before, after)
	}
	supBefore := pidsByService(c.Children(), "sup")
	if err := c.RestartChildren(context.Background(), "sup", -1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "old sup gone", func() bool { return len(c.Children()) == 4 })
	if got := pidsByService(c.Children(), "sup"); got[0] == supBefore[0] {
		t.Errorf("sup not restarted")
	}
	if err := c.RestartChildren(context.Background(), "nope", -1); !errors.Is(err, ErrUnknownService) {
		t.Errorf("unknown: %v", err)
	}
}

func TestControllerPolicyStop(t *testing.T) {
	web := helperSpec("web", "ready", 1)
	c, err := NewController([]Spec{web}, ControllerOptions{Policy: &stopAfterPolicy{limit: 1}, Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	waitReady(t, c)
	victim := c.Children()[0].PID
	if err := killPID(victim); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrStoppedByPolicy) {
			t.Errorf("Run = %v, want ErrStoppedByPolicy", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after the policy stopped the container")
	}
	noChildren(t)
}

func TestControllerStopAbortsReload(t *testing.T) {
	c, err := NewController([]Spec{helperSpec("web", "ready", 1)}, ControllerOptions{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	stop := runController(t, c)
	waitReady(t, c)
	reloaded := make(chan error, 1)
	go func() {
		// Never ready, no startup timeout: only Run's stop ends the wait.
		_, err := c.Reload(context.Background(), []Spec{helperSpec("web", "silent", 1)})
		reloaded <- err
	}()
	eventually(t, "new container starting", func() bool { return len(c.Children()) == 2 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := <-reloaded; !errors.Is(err, context.Canceled) {
		t.Errorf("Reload = %v, want cancelled", err)
	}
	noChildren(t)
}

// TestControllerReloadScales: a reload that changes a service's count
// alone scales it (the running pids stay), and a service an operator
// scaled keeps its count through reloads that do not change it.
func TestControllerReloadScales(t *testing.T) {
	web, other := helperSpec("web", "ready", 2), helperSpec("other", "ready", 1)
	c, err := NewController([]Spec{web, other}, ControllerOptions{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	runController(t, c)
	waitReady(t, c)
	before := pidsByService(c.Children(), "web")
	web3 := web
	web3.Count = 3
	changes, err := c.Reload(context.Background(), []Spec{web3, other})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0].Change != "scaled" || changes[1].Change != "unchanged" {
		t.Errorf("changes = %+v", changes)
	}
	after := pidsByService(c.Children(), "web")
	if len(after) != 3 || !slices.Contains(after, before[0]) || !slices.Contains(after, before[1]) {
		t.Errorf("web %v after scaling %v to 3 by a reload", after, before)
	}
	// An operator scales other; a reload that does not change it keeps 4.
	if err := c.Scale(context.Background(), "other", 4); err != nil {
		t.Fatal(err)
	}
	scaled := pidsByService(c.Children(), "other")
	if _, err := c.Reload(context.Background(), []Spec{web3, other}); err != nil {
		t.Fatal(err)
	}
	if got := pidsByService(c.Children(), "other"); !slices.Equal(got, scaled) {
		t.Errorf("other %v after a reload, was %v as scaled", got, scaled)
	}
}
