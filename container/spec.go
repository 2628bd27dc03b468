package container

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigild/vigil/probe"
)

// Defaults applied to zero fields of a Spec.
const (
	DefaultGracefulStop    = 10 * time.Second
	DefaultRestartDelay    = 100 * time.Millisecond
	DefaultRestartDelayMax = 30 * time.Second
	DefaultStableAfter     = 10 * time.Second
)

// Readiness says when a child counts as ready.
type Readiness int

const (
	// ReadyNotify (the default): the child is ready once it writes
	// {"ready":true} to its NOTIFY_PIPE.
	ReadyNotify Readiness = iota
	// ReadyStarted: the child is ready as soon as it has been started, for
	// programs that know nothing of vigil.
	ReadyStarted
	// ReadyProbe: the child is ready once its ReadinessProbe passes, for
	// programs that know nothing of vigil but answer on a port.
	ReadyProbe
)

// String returns "notify" or "started".
func (r Readiness) String() string {
	switch r {
	case ReadyNotify:
		return "notify"
	case ReadyStarted:
		return "started"
	case ReadyProbe:
		return "probe"
	}
	return fmt.Sprintf("Readiness(%d)", int(r))
}

// Spec describes one service: Count instances of one command. The zero value
// of every duration field means its default; a Spec is copied by the
// container, which never modifies the caller's.
type Spec struct {
	// Name of the service, used in output prefixes and ChildInfo. Required;
	// it must not contain whitespace or '|'.
	Name string
	// Command is the program and its arguments. Command[0] is looked up in
	// PATH when it contains no slash; a relative path with a slash is
	// relative to Dir.
	Command []string
	// Dir is the working directory of the children ("" = the controller's).
	Dir string
	// Env is added to the controller's environment (os.Environ()); later
	// entries win. NOTIFY_PIPE=3 is always set.
	Env []string
	// Count is the number of instances; 0 means 1.
	Count int
	// Restart restarts an instance whose process exits. With Restart false an
	// exited instance stays down.
	Restart bool
	// Persistent services (such as vigil's supervisor) are started first and
	// stopped last by a Controller, and are not swapped by Reload unless
	// their Spec changed. A Container ignores it.
	Persistent bool
	// Readiness says when a child is ready (default ReadyNotify).
	Readiness Readiness
	// StartupTimeout: a child not yet ready that has been silent this long
	// fails its startup. 0 = no limit.
	StartupTimeout time.Duration
	// HealthCheckTimeout: a ready child silent this long fails its health
	// check. 0 = no limit.
	HealthCheckTimeout time.Duration
	// GracefulStop is how long a child is given after SIGINT, and again after
	// SIGTERM, before it is killed. 0 = DefaultGracefulStop; negative = kill
	// at once.
	GracefulStop time.Duration
	// RestartDelay is the first back-off delay (0 = DefaultRestartDelay).
	RestartDelay time.Duration
	// RestartDelayMax caps the doubling delay (0 = DefaultRestartDelayMax).
	RestartDelayMax time.Duration
	// StableAfter: an instance that ran at least this long has its delay
	// reset (0 = DefaultStableAfter).
	StableAfter time.Duration
	// StopSignal is the first signal of a graceful stop (0 = SIGINT, as in
	// the original); SIGTERM and SIGKILL follow as GracefulStop passes.
	StopSignal syscall.Signal
	// Credential, when set, is the user and groups the children run as
	// (the controller must be allowed to switch to them: root).
	Credential *syscall.Credential
	// StartLimitBurst and StartLimitInterval: an instance started more than
	// StartLimitBurst times within StartLimitInterval has failed (state
	// "failed") and is not restarted until StartService. 0 = no limit.
	StartLimitBurst    int
	StartLimitInterval time.Duration
	// Stopped services are added without starting any process (autostart
	// off); StartService starts them.
	Stopped bool
	// Required services must become ready for a Controller's Run to start
	// at all: if one fails at start, Run stops everything and fails (the
	// original's behaviour for every service). Others that fail are left
	// failed, and retried as their Spec says. A Container ignores it.
	Required bool
	// ReadinessProbe is checked until the child is ready (Readiness
	// ReadyProbe); HealthProbe, once it is ready: its failure is a failed
	// health check (see Policy). "${port}", "${instance}" and "${service}"
	// are expanded in their URLs, addresses and commands.
	ReadinessProbe, HealthProbe *probe.Spec
	// Port, when not 0, is instance 0's port: instance i gets PORT=Port+i
	// in its environment, and two processes of one instance never run at
	// once (a restart stops the old one before starting the new: they
	// could not both hold the port). "${port}" in Command and Env is the
	// instance's port, "${instance}" its number and "${service}" the
	// service's name (with or without a Port).
	Port int
	// Rolling makes ReplaceService (a reload) replace the instances one at
	// a time, each once its replacement is ready, instead of blue/green. A
	// service with a Port is always replaced this way.
	Rolling bool
	// SharedCgroup runs the children in the run's cgroup rather than each
	// in a cgroup of its own, where a Subreaper keeps cgroups: what a child
	// leaves behind is then traced by the environment it inherited only
	// (as where there are no cgroups), but no cgroup is made and removed
	// for every process: a fifth of what a spawn costs the controller
	// (starting 1,000 workers, 250 us of its CPU per worker instead of
	// 305).
	SharedCgroup bool
	// Files are inherited by every child as descriptors 4, 5, ... (after
	// the readiness pipe on 3), e.g. a listening socket the controller
	// holds. The container never closes them.
	Files []*os.File
}

// ErrInvalidSpec is wrapped by every validation error of a Spec.
var ErrInvalidSpec = errors.New("invalid service spec")

// withDefaults returns a copy with zero fields replaced by their defaults.
func (s Spec) withDefaults() Spec {
	s.Command = slices.Clone(s.Command)
	s.Env = slices.Clone(s.Env)
	s.Files = slices.Clone(s.Files)
	if s.Count == 0 {
		s.Count = 1
	}
	if s.GracefulStop == 0 {
		s.GracefulStop = DefaultGracefulStop
	}
	if s.RestartDelay == 0 {
		s.RestartDelay = DefaultRestartDelay
	}
	if s.RestartDelayMax == 0 {
		s.RestartDelayMax = DefaultRestartDelayMax
	}
	if s.StableAfter == 0 {
		s.StableAfter = DefaultStableAfter
	}
	return s
}

// validate checks one spec; errors name the service and the field.
func (s Spec) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("service %q: %s: %w", s.Name, fmt.Sprintf(format, args...), ErrInvalidSpec)
	}
	switch {
	case s.Name == "":
		return fmt.Errorf("service with command %q: Name is empty: %w", s.Command, ErrInvalidSpec)
	case strings.ContainsAny(s.Name, " \t\r\n|"):
		return bad("Name contains whitespace or '|'")
	case len(s.Command) == 0 || s.Command[0] == "":
		return bad("Command is empty")
	case s.Count < 0:
		return bad("Count %d is negative", s.Count)
	case s.Readiness != ReadyNotify && s.Readiness != ReadyStarted && s.Readiness != ReadyProbe:
		return bad("Readiness %d is unknown", int(s.Readiness))
	case (s.Readiness == ReadyProbe) != (s.ReadinessProbe != nil):
		return bad("Readiness probe and a ReadinessProbe go together")
	case s.StartupTimeout < 0:
		return bad("StartupTimeout %v is negative", s.StartupTimeout)
	case s.HealthCheckTimeout < 0:
		return bad("HealthCheckTimeout %v is negative", s.HealthCheckTimeout)
	case s.RestartDelay < 0:
		return bad("RestartDelay %v is negative", s.RestartDelay)
	case s.RestartDelayMax < 0:
		return bad("RestartDelayMax %v is negative", s.RestartDelayMax)
	case s.RestartDelayMax != 0 && s.RestartDelay > s.RestartDelayMax:
		return bad("RestartDelay %v exceeds RestartDelayMax %v", s.RestartDelay, s.RestartDelayMax)
	case s.StableAfter < 0:
		return bad("StableAfter %v is negative", s.StableAfter)
	case s.Port < 0 || s.Port > 65535:
		return bad("Port %d is not a port", s.Port)
	case s.StartLimitBurst < 0 || s.StartLimitInterval < 0:
		return bad("StartLimitBurst %d or StartLimitInterval %v is negative", s.StartLimitBurst, s.StartLimitInterval)
	case s.StartLimitBurst > 0 && s.StartLimitInterval == 0:
		return bad("StartLimitBurst %d needs a StartLimitInterval", s.StartLimitBurst)
	}
	for i, kv := range s.Env {
		if !strings.Contains(kv, "=") || strings.HasPrefix(kv, "=") {
			return bad("Env[%d] %q is not KEY=VALUE", i, kv)
		}
	}
	return nil
}

// validateSpecs validates every spec and refuses duplicate names.
func validateSpecs(specs []Spec) error {
	seen := make(map[string]bool, len(specs))
	for _, s := range specs {
		if err := s.validate(); err != nil {
			return err
		}
		if seen[s.Name] {
			return fmt.Errorf("service %q: defined twice: %w", s.Name, ErrInvalidSpec)
		}
		seen[s.Name] = true
	}
	return nil
}

// equalSpec reports whether two specs describe the same service.
func equalSpec(a, b Spec) bool {
	a, b = a.withDefaults(), b.withDefaults()
	return a.Name == b.Name && slices.Equal(a.Command, b.Command) && a.Dir == b.Dir &&
		slices.Equal(a.Env, b.Env) && a.Count == b.Count && a.Restart == b.Restart &&
		a.Persistent == b.Persistent && a.Readiness == b.Readiness &&
		a.StartupTimeout == b.StartupTimeout && a.HealthCheckTimeout == b.HealthCheckTimeout &&
		a.GracefulStop == b.GracefulStop && a.RestartDelay == b.RestartDelay &&
		a.RestartDelayMax == b.RestartDelayMax && a.StableAfter == b.StableAfter &&
		slices.Equal(a.Files, b.Files) && a.StopSignal == b.StopSignal &&
		equalCredential(a.Credential, b.Credential) && a.StartLimitBurst == b.StartLimitBurst &&
		a.StartLimitInterval == b.StartLimitInterval && a.Port == b.Port && a.SharedCgroup == b.SharedCgroup &&
		reflect.DeepEqual(a.ReadinessProbe, b.ReadinessProbe) && reflect.DeepEqual(a.HealthProbe, b.HealthProbe)
}

func equalCredential(a, b *syscall.Credential) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Uid == b.Uid && a.Gid == b.Gid && slices.Equal(a.Groups, b.Groups) && a.NoSetGroups == b.NoSetGroups
}

// forInstance is the spec of instance index: "${instance}", "${service}"
// and "${port}" expanded in Command and Env. A spec with none is its own
// (its lists are shared, and never changed).
func (s Spec) forInstance(index int) Spec {
	if !s.hasPlaceholders() {
		return s
	}
	port := ""
	if s.Port > 0 {
		port = strconv.Itoa(s.Port + index)
	}
	r := strings.NewReplacer("${instance}", strconv.Itoa(index), "${service}", s.Name, "${port}", port)
	expand := func(list []string) []string {
		out := make([]string, len(list))
		for i, x := range list {
			out[i] = r.Replace(x)
		}
		return out
	}
	s.Command, s.Env = expand(s.Command), expand(s.Env)
	probe := func(p *probe.Spec) *probe.Spec {
		if p == nil {
			return nil
		}
		q := *p
		if q.HTTP != nil {
			h := *q.HTTP
			h.URL = r.Replace(h.URL)
			q.HTTP = &h
		}
		if q.TCP != nil {
			t := *q.TCP
			t.Address = r.Replace(t.Address)
			q.TCP = &t
		}
		if q.Exec != nil {
			e := *q.Exec
			e.Argv, e.Env = expand(e.Argv), expand(e.Env)
			q.Exec = &e
		}
		return &q
	}
	s.ReadinessProbe, s.HealthProbe = probe(s.ReadinessProbe), probe(s.HealthProbe)
	return s
}

// hasPlaceholders says whether any string forInstance expands holds a
// "${".
func (s *Spec) hasPlaceholders() bool {
	has := func(list ...string) bool {
		for _, x := range list {
			if strings.Contains(x, "${") {
				return true
			}
		}
		return false
	}
	probe := func(p *probe.Spec) bool {
		return p != nil && (p.HTTP != nil && has(p.HTTP.URL) || p.TCP != nil && has(p.TCP.Address) ||
			p.Exec != nil && (has(p.Exec.Argv...) || has(p.Exec.Env...)))
	}
	return has(s.Command...) || has(s.Env...) || probe(s.ReadinessProbe) || probe(s.HealthProbe)
}
