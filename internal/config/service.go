package config

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/user"
	"reflect"
	"strconv"
	"strings"
)

// ReadinessProbe: ready when the service's readiness probe passes.
const ReadinessProbe Readiness = "probe"

// Reload modes.
const (
	// ReloadBlueGreen: every new process must be ready before the old ones
	// stop.
	ReloadBlueGreen = "blue-green"
	// ReloadRolling: one instance at a time, each stopped once its
	// replacement is ready (or, for a service with a port, stopped before
	// its replacement starts).
	ReloadRolling = "rolling"
)

// fileProbe is a readiness or health table.
type fileProbe struct {
	HTTP             *string       `toml:"http"`
	TCP              *string       `toml:"tcp"`
	Exec             []string      `toml:"exec"`
	Interval         *tomlDuration `toml:"interval"`
	Timeout          *tomlDuration `toml:"timeout"`
	FailureThreshold *int64        `toml:"failure_threshold"`
	SuccessThreshold *int64        `toml:"success_threshold"`
	InitialDelay     *tomlDuration `toml:"initial_delay"`
}

// fileStartLimit is start_limit = { burst, interval }.
type fileStartLimit struct {
	Burst    *int64        `toml:"burst"`
	Interval *tomlDuration `toml:"interval"`
}

// signals are the stop signals a service may name.
var signals = map[string]bool{"INT": true, "TERM": true, "QUIT": true, "HUP": true, "USR1": true, "USR2": true, "WINCH": true, "KILL": true}

// serviceExtras validates the keys beyond the original's: readiness
// probes, health, required, autostart, user and group, env_file,
// stop_signal, start_limit, port and reload.
func (v *validator) serviceExtras(s *Service, f *fileService, key func(k ...string) []string, dir string) {
	s.Autostart = true
	s.OwnCgroup = true
	s.StopSignal = "SIGINT"
	switch r := f.Readiness.(type) {
	case nil:
	case string:
		switch Readiness(r) {
		case ReadinessNotify, ReadinessStarted:
			s.Readiness = Readiness(r)
		default:
			v.fail(key("readiness"), "%q is not a readiness: want \"notify\", \"started\", or a probe table such as { http = \"http://127.0.0.1:${port}/healthz\" }", r)
		}
	case map[string]any:
		var fp fileProbe
		if v.decodeValue(reflectValue(&fp), r, key("readiness")) {
			s.Readiness, s.ReadinessProbe = ReadinessProbe, v.probe(key("readiness"), &fp)
		}
	default:
		v.fail(key("readiness"), "wrong type: a TOML %s where \"notify\", \"started\" or a probe table is wanted", tomlType(r))
	}
	if f.Health != nil {
		s.HealthProbe = v.probe(key("health"), f.Health)
	}
	if f.Required != nil {
		s.Required = *f.Required
	}
	if f.Autostart != nil {
		s.Autostart = *f.Autostart
	}
	if f.OwnCgroup != nil {
		s.OwnCgroup = *f.OwnCgroup
	}
	if f.User != nil {
		uid, gid, err := lookupUserGroup(*f.User)
		if err != nil {
			v.fail(key("user"), "%v", err)
		} else {
			s.User, s.UID, s.GID = *f.User, uid, gid
		}
	}
	if f.Group != nil {
		gid, err := lookupGroup(*f.Group)
		if err != nil {
			v.fail(key("group"), "%v", err)
		} else {
			s.Group, s.GID = *f.Group, gid
			if s.User == "" {
				s.UID = os.Geteuid()
			}
		}
	}
	if f.EnvFile != nil {
		s.EnvFile = resolve(dir, *f.EnvFile)
		vars, err := readEnvFile(s.EnvFile)
		if err != nil {
			v.fail(key("env_file"), "%v", err)
		}
		if len(vars) > 0 && s.Env == nil {
			s.Env = map[string]string{}
		}
		for k, val := range vars {
			if _, set := s.Env[k]; !set { // env's own win
				s.Env[k] = val
			}
		}
	}
	if f.StopSignal != nil {
		name := strings.TrimPrefix(strings.ToUpper(*f.StopSignal), "SIG")
		if !signals[name] {
			v.fail(key("stop_signal"), "%q is not a stop signal: want one of SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGKILL", *f.StopSignal)
		} else {
			s.StopSignal = "SIG" + name
		}
	}
	if f.StartLimit != nil {
		if f.StartLimit.Burst == nil || *f.StartLimit.Burst < 1 {
			v.fail(key("start_limit", "burst"), "start_limit needs a burst of 1 or more")
		} else {
			s.StartLimitBurst = int(*f.StartLimit.Burst)
		}
		s.StartLimitInterval = v.duration(key("start_limit", "interval"), f.StartLimit.Interval, 0)
		if s.StartLimitInterval <= 0 {
			v.fail(key("start_limit", "interval"), "start_limit needs an interval longer than zero, such as \"60s\"")
		}
	}
	if f.Port != nil {
		if p := *f.Port; p < 1 || p+int64(s.Count)-1 > 65535 {
			v.fail(key("port"), "port %d with %d instances goes beyond 1-65535", p, s.Count)
		} else {
			s.Port = int(p)
		}
	}
	s.Reload = ReloadBlueGreen
	if s.Port != 0 {
		s.Reload = ReloadRolling
	}
	if f.Reload != nil {
		switch *f.Reload {
		case ReloadBlueGreen:
			if s.Port != 0 {
				v.fail(key("reload"), "a service with a port cannot be replaced blue/green: its old and new processes would need the same ports; use reload = %q", ReloadRolling)
			}
			s.Reload = ReloadBlueGreen
		case ReloadRolling:
			s.Reload = ReloadRolling
		default:
			v.fail(key("reload"), "%q is not a reload mode: want %q or %q", *f.Reload, ReloadBlueGreen, ReloadRolling)
		}
	}
}

// probe validates a probe table at key.
func (v *validator) probe(key []string, f *fileProbe) *Probe {
	k := func(name string) []string { return append(append([]string(nil), key...), name) }
	p := &Probe{}
	kinds := 0
	if f.HTTP != nil {
		kinds++
		p.HTTP = *f.HTTP
		if !strings.HasPrefix(p.HTTP, "http://") && !strings.HasPrefix(p.HTTP, "https://") {
			v.fail(k("http"), "%q is not an http:// or https:// URL", p.HTTP)
		}
	}
	if f.TCP != nil {
		kinds++
		p.TCP = *f.TCP
		if !strings.Contains(p.TCP, ":") {
			v.fail(k("tcp"), "%q is not an address HOST:PORT", p.TCP)
		}
	}
	if f.Exec != nil {
		kinds++
		p.Exec = f.Exec
		if len(p.Exec) == 0 || p.Exec[0] == "" {
			v.fail(k("exec"), "an exec probe needs a command")
		}
	}
	if kinds != 1 {
		v.fail(key, "a probe is exactly one of http, tcp and exec (%d given)", kinds)
	}
	p.Interval = v.duration(k("interval"), f.Interval, 0)
	p.Timeout = v.duration(k("timeout"), f.Timeout, 0)
	p.InitialDelay = v.duration(k("initial_delay"), f.InitialDelay, 0)
	if f.FailureThreshold != nil {
		p.FailureThreshold = v.nonNegative(k("failure_threshold"), *f.FailureThreshold)
	}
	if f.SuccessThreshold != nil {
		p.SuccessThreshold = v.nonNegative(k("success_threshold"), *f.SuccessThreshold)
	}
	return p
}

// lookupUserGroup resolves a user name, or a decimal uid, to its uid and
// primary gid (a uid without an entry in the user database: the gid of
// the same number).
func lookupUserGroup(name string) (uid, gid int, err error) {
	uid, err = lookupUser(name)
	if err != nil {
		return 0, 0, err
	}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return uid, uid, nil
	}
	if gid, err = strconv.Atoi(u.Gid); err != nil {
		return 0, 0, fmt.Errorf("user %q has gid %q: %w", name, u.Gid, err)
	}
	return uid, gid, nil
}

// readEnvFile reads a dotenv file: KEY=VALUE lines, optionally after
// "export ", values bare, 'single-quoted' (taken as they are) or
// "double-quoted" (with \n, \t, \", \\ and \$ escapes); # starts a comment
// (after a bare value, only after a space); blank lines are skipped. An
// error names the file and line.
func readEnvFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("env_file: %w", err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, val, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\"'") {
			return nil, fmt.Errorf("%s:%d: not KEY=VALUE: %q", path, n, line)
		}
		val = strings.TrimSpace(val)
		switch {
		case strings.HasPrefix(val, "'"):
			end := strings.IndexByte(val[1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("%s:%d: %s: unterminated single quote", path, n, k)
			}
			val = val[1 : 1+end]
		case strings.HasPrefix(val, `"`):
			var b strings.Builder
			i := 1
			for ; i < len(val) && val[i] != '"'; i++ {
				if val[i] == '\\' && i+1 < len(val) {
					i++
					switch val[i] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					default:
						b.WriteByte(val[i])
					}
					continue
				}
				b.WriteByte(val[i])
			}
			if i >= len(val) {
				return nil, fmt.Errorf("%s:%d: %s: unterminated double quote", path, n, k)
			}
			val = b.String()
		default:
			if i := strings.Index(val, " #"); i >= 0 {
				val = strings.TrimSpace(val[:i])
			}
		}
		if strings.ContainsRune(val, 0) {
			return nil, fmt.Errorf("%s:%d: %s: the value contains a NUL byte", path, n, k)
		}
		vars[k] = val
	}
	return vars, nil
}

// reflectValue is the settable value p points to.
func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
