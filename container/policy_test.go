//go:build linux

package container

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestPolicyStopsContainer(t *testing.T) {
	s := helperSpec("crashy", "crash", 2)
	pol := &stopAfterPolicy{limit: 3}
	c, err := NewContainer([]Spec{s, helperSpec("ok", "ready", 1)}, Options{Policy: pol, Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("policy did not stop the container")
	}
	if !errors.Is(c.Err(), ErrStoppedByPolicy) {
		t.Errorf("Err = %v", c.Err())
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("Stop after policy stop: %v", err)
	}
	noChildren(t)
}

func TestSpawnFailureIsReported(t *testing.T) {
	s := Spec{Name: "ghost", Command: []string{"/nonexistent/vigil-test"}, Restart: true, RestartDelay: 10 * time.Millisecond}
	c := startContainer(t, []Spec{s}, Options{Output: io.Discard})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.WaitReady(ctx)
	if !errors.Is(err, ErrNotReady) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("WaitReady = %v, want ErrNotReady wrapping ENOENT", err)
	}
	k := c.Children()[0]
	if k.State != StateBackingOff || k.LastError == "" || k.NextRestart.IsZero() {
		t.Errorf("child = %+v", k)
	}
}

func TestInvalidSpecs(t *testing.T) {
	good := Spec{Name: "a", Command: []string{"true"}}
	for _, tc := range []struct {
		name string
		mod  func(*Spec)
		want string
	}{
		{"no name", func(s *Spec) { s.Name = "" }, "Name is empty"},
		{"bad name", func(s *Spec) { s.Name = "a b" }, "whitespace"},
		{"no command", func(s *Spec) { s.Command = nil }, "Command is empty"},
		{"negative count", func(s *Spec) { s.Count = -1 }, "Count -1"},
		{"bad readiness", func(s *Spec) { s.Readiness = 7 }, "Readiness 7"},
		{"negative timeout", func(s *Spec) { s.StartupTimeout = -1 }, "StartupTimeout"},
		{"delay over max", func(s *Spec) { s.RestartDelay, s.RestartDelayMax = time.Second, time.Millisecond }, "exceeds RestartDelayMax"},
		{"bad env", func(s *Spec) { s.Env = []string{"NOEQUALS"} }, `Env[0] "NOEQUALS"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.mod(&s)
			_, err := NewContainer([]Spec{s}, Options{Output: io.Discard})
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrInvalidSpec mentioning %q", err, tc.want)
			}
		})
	}
	_, err := NewContainer([]Spec{good, good}, Options{Output: io.Discard})
	if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), "defined twice") {
		t.Errorf("duplicate: %v", err)
	}
}

// recordingPolicy is DefaultPolicy that records its calls.
type recordingPolicy struct {
	DefaultPolicy
	mu     sync.Mutex
	events []string
	spawns []time.Time
}

func (p *recordingPolicy) add(e string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, e)
}

func (p *recordingPolicy) ChildSpawn(c ChildInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.spawns = append(p.spawns, time.Now())
}

func (p *recordingPolicy) ChildExit(c ChildInfo, s ExitStatus) Action {
	p.add("exit")
	return Continue
}

func (p *recordingPolicy) StartupFailed(c ChildInfo) Action {
	p.add("startup")
	return Kill
}

func (p *recordingPolicy) HealthCheckFailed(c ChildInfo) Action {
	p.add("health")
	return Kill
}

func (p *recordingPolicy) count(e string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, x := range p.events {
		if x == e {
			n++
		}
	}
	return n
}

func (p *recordingPolicy) calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

func (p *recordingPolicy) spawnTimes() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.spawns)
}

// stopAfterPolicy stops the container after limit failures.
type stopAfterPolicy struct {
	DefaultPolicy
	limit, n int
}
