// Package config reads vigil.toml, the configuration of `vigil run`: the
// supervisor's socket and monitors, and the services to keep running.
//
// Parsing is strict: an unknown key, a value of the wrong type or a bad
// value is an *Error naming the key and its line, and nothing should start.
// Relative paths are resolved against the configuration file's directory.
// Defaults are filled in, so that a Config says everything that will be
// done; Encode prints it back as TOML (for `vigil check`).
//
// A configuration without services is valid: the supervisor alone runs.
//
// An example:
//
//	[supervisor]
//	socket = "run/supervisor.ipc"
//	allow_groups = ["staff"]
//	readers = ["monitoring"]          # groups, or "user:NAME"
//	operators = ["user:deploy"]
//
//	[supervisor.monitors.memory]
//	maximum_size_limit = "500MiB"
//
//	[services.web]
//	command = ["bin/web", "--port", "8080"]
//	count = 4
//	health_check_timeout = "30s"
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"
)

// EnvProcessorCount overrides the default count of every service that does
// not set one (the number of CPUs).
const EnvProcessorCount = "VIGIL_PROCESSOR_COUNT"

// ReservedServiceName is the name of the controller's own supervisor child;
// no service may take it.
const ReservedServiceName = "supervisor"

// Defaults.
const (
	DefaultSocket          = "supervisor.ipc"
	DefaultLogFormat       = "text"
	DefaultGracefulStop    = Duration(10 * time.Second)
	DefaultRestartDelay    = Duration(100 * time.Millisecond)
	DefaultRestartDelayMax = Duration(30 * time.Second)
	DefaultStableAfter     = Duration(10 * time.Second)
	DefaultMemoryInterval  = Duration(10 * time.Second)
	DefaultThresholdSize   = 10 * MiB
	DefaultProcessInterval = Duration(60 * time.Second)
	DefaultSampleDuration  = Duration(time.Second)
	DefaultSampleTimeout   = Duration(10 * time.Second)
	DefaultLogLevel        = "info"
	DefaultMaxLineSize     = 8 * MiB
	DefaultMaxStateSize    = 64 * KiB
	DefaultMaxStateDepth   = 32
	DefaultMaxInFlight     = 16
	DefaultLineTimeout     = Duration(10 * time.Second)
	DefaultMaxConnections  = 10000
)

// Readiness says when a service's child counts as ready.
type Readiness string

// Readiness values.
const (
	// ReadinessNotify: ready when the child says so through its notify pipe.
	ReadinessNotify Readiness = "notify"
	// ReadinessStarted: ready once running, for programs that know nothing
	// of vigil.
	ReadinessStarted Readiness = "started"
)

// Config is a whole vigil.toml, defaults filled in.
type Config struct {
	// Path is the file the configuration was loaded from ("" for Parse).
	Path string
	// Source is the document it was loaded from, as it was then (nil for
	// Parse).
	Source []byte
	// Dir is the absolute directory relative paths were resolved against.
	Dir string
	// Supervisor is the [supervisor] table.
	Supervisor Supervisor
	// Services are the [services.NAME] tables, sorted by name. There may be
	// none.
	Services []Service
	// Logs is the [logs] table: where the services' output goes.
	Logs Logs
	// Metrics is the [metrics] table: where the supervisor serves
	// Prometheus metrics (off unless it says where).
	Metrics Metrics
}

// Service returns the service called name.
func (c *Config) Service(name string) (Service, bool) {
	i, ok := slices.BinarySearchFunc(c.Services, name, func(s Service, n string) int {
		switch {
		case s.Name < n:
			return -1
		case s.Name > n:
			return 1
		}
		return 0
	})
	if !ok {
		return Service{}, false
	}
	return c.Services[i], true
}

// Supervisor is the [supervisor] table.
type Supervisor struct {
	// Socket is the absolute path of the supervisor's Unix socket; default
	// "supervisor.ipc" beside the configuration file.
	Socket string
	// AllowUIDs are user ids allowed to connect besides the supervisor's
	// own (allow_uids).
	AllowUIDs []int
	// AllowGroups are the groups allowed to connect, as written: names
	// (looked up when parsing) or decimal gids (taken as they are)
	// (allow_groups).
	AllowGroups []string
	// AllowGIDs are AllowGroups resolved to gids, in the same order.
	AllowGIDs []int
	// SocketGroup, when not empty, is the group (name or decimal gid) that
	// owns the socket, made mode 0660 (socket_group).
	SocketGroup string
	// SocketGID is SocketGroup resolved; meaningful only when SocketGroup
	// is set.
	SocketGID int
	// LogFormat is "text" (default) or "json" (log_format).
	LogFormat string
	// LogLevel is "debug", "info" (default), "warn" or "error"
	// (log_level). Only debug shows what clients sent, where bad input is
	// logged.
	LogLevel string
	// Limits bound what one client can make the supervisor hold.
	Limits SupervisorLimits
	// Readers may read the status (readers); nil (the key left out) means
	// every peer that may connect.
	Readers *Principals
	// Operators may control: restart, reload, start, stop (operators).
	Operators Principals
	// Diagnosers may forward operations to workers: the dumps
	// (diagnosers).
	Diagnosers Principals
	// Monitors are the [supervisor.monitors] tables.
	Monitors Monitors
}

// SupervisorLimits are the supervisor's limits on its clients, each a key
// of [supervisor].
type SupervisorLimits struct {
	// MaxLineSize is the longest line a connection may send
	// (max_line_size, default 8MiB).
	MaxLineSize Size
	// MaxStateSize is the largest state a registration may carry
	// (max_state_size, default 64KiB).
	MaxStateSize Size
	// MaxStateDepth is the deepest nesting of a registration's state
	// (max_state_depth, default 32).
	MaxStateDepth int
	// MaxInFlight is the most calls of one connection unanswered at once
	// (max_in_flight, default 16).
	MaxInFlight int
	// LineTimeout is the time a line may take from its first byte to its
	// end (line_timeout, default 10s).
	LineTimeout Duration
	// MaxConnections is the most connections served at once
	// (max_connections, default 10000).
	MaxConnections int
}

// Principals are the users and groups a role key names.
type Principals struct {
	// Names are the entries as written: "NAME" or "group:NAME" for a
	// group, "user:NAME" for a user; NAME may be a decimal id.
	Names []string
	// UIDs are the users, resolved.
	UIDs []int
	// GIDs are the groups, resolved.
	GIDs []int
}

// Monitors holds the monitors' settings; a nil monitor is off (its table
// is absent).
type Monitors struct {
	// Memory is [supervisor.monitors.memory].
	Memory *MemoryMonitor
	// Process is [supervisor.monitors.process].
	Process *ProcessMonitor
}

// MemoryMonitor is [supervisor.monitors.memory], with the original's
// option names. A zero limit is no limit.
type MemoryMonitor struct {
	// Interval between full checks (interval, default 10s).
	Interval Duration
	// MaximumSizeLimit is the largest a process may grow
	// (maximum_size_limit).
	MaximumSizeLimit Size
	// TotalSizeLimit bounds max(shared) + sum(private) over all processes
	// (total_size_limit).
	TotalSizeLimit Size
	// FreeSizeMinimum is the free memory the host must keep
	// (free_size_minimum).
	FreeSizeMinimum Size
	// IncreaseLimit is how many increases of more than ThresholdSize make
	// a leak (increase_limit).
	IncreaseLimit int
	// ThresholdSize is the increase that counts (threshold_size, default
	// 10MiB).
	ThresholdSize Size
	// MemorySample, when not nil, asks a worker for a sample before it is
	// killed (memory_sample = { duration, timeout }).
	MemorySample *MemorySample
	// DumpDirectory is where samples are written, absolute (dump_directory;
	// "" = the system's temporary directory).
	DumpDirectory string
	// Services are per-service limits by service name
	// ([supervisor.monitors.memory.services.NAME]); keys left out take the
	// monitor's values.
	Services map[string]ServiceMemoryLimits
}

// LimitsFor returns the limits of the named service: its own table's, or
// the monitor's.
func (m *MemoryMonitor) LimitsFor(service string) ServiceMemoryLimits {
	if l, ok := m.Services[service]; ok {
		return l
	}
	return ServiceMemoryLimits{MaximumSizeLimit: m.MaximumSizeLimit, IncreaseLimit: m.IncreaseLimit, ThresholdSize: m.ThresholdSize}
}

// MemorySample is memory_sample = { duration = "1s", timeout = "10s" }.
type MemorySample struct {
	// Duration of the sample (default 1s).
	Duration Duration
	// Timeout of the whole request, greater than Duration (default 10s).
	Timeout Duration
}

// ServiceMemoryLimits are one service's memory limits.
type ServiceMemoryLimits struct {
	// MaximumSizeLimit (maximum_size_limit).
	MaximumSizeLimit Size
	// IncreaseLimit (increase_limit).
	IncreaseLimit int
	// ThresholdSize (threshold_size).
	ThresholdSize Size
}

// ProcessMonitor is [supervisor.monitors.process].
type ProcessMonitor struct {
	// Interval between captures (interval, default 60s).
	Interval Duration
	// PPID is the root of the captured tree; 0 (default) means the
	// supervisor's parent.
	PPID int
}

// Service is one [services.NAME] table.
type Service struct {
	// Name matches [A-Za-z0-9_-]+ and is not "supervisor".
	Name string
	// Command is the program and its arguments; never empty.
	Command []string
	// Count of instances, at least 1; default the number of CPUs, or
	// VIGIL_PROCESSOR_COUNT.
	Count int
	// Restart children that exit (default true).
	Restart bool
	// StartupTimeout is how long a child may take to become ready; 0 =
	// no limit.
	StartupTimeout Duration
	// HealthCheckTimeout is how long a ready child may stay silent; 0 = no
	// limit.
	HealthCheckTimeout Duration
	// GracefulStop is the wait after SIGINT, and again after SIGTERM,
	// before the next signal (default 10s).
	GracefulStop Duration
	// RestartDelay is the first backoff delay (default 100ms).
	RestartDelay Duration
	// RestartDelayMax caps the doubling delay (default 30s), at least
	// RestartDelay.
	RestartDelayMax Duration
	// StableAfter is how long an instance must live to reset its backoff
	// (default 10s).
	StableAfter Duration
	// Dir is the absolute working directory (default the configuration
	// file's directory).
	Dir string
	// Env holds extra environment variables for the children.
	Env map[string]string
	// Supervised workers get VIGIL_SUPERVISOR_SOCKET (default true).
	Supervised bool
	// Readiness is "notify" (default), "started", or "probe" (a probe
	// says: ReadinessProbe).
	Readiness Readiness
	// ReadinessProbe is the readiness table's probe (readiness = { http =
	// ... }), when Readiness is "probe".
	ReadinessProbe *Probe
	// HealthProbe, when set, checks a ready child (health = { ... }); its
	// failure is a failed health check.
	HealthProbe *Probe
	// Logs is where its output goes: its logs table over [logs].
	Logs Logs
	// Required: if it cannot start, vigil run stops everything (required).
	Required bool
	// Autostart: started with vigil run (default true); off, it waits for
	// vigil start.
	Autostart bool
	// OwnCgroup: each of its processes runs in a cgroup of its own, where
	// vigil run can make one (own_cgroup, default true); off, in the run's
	// cgroup, and what a process leaves behind is traced by the
	// environment it inherited.
	OwnCgroup bool
	// User and Group, when set, are who the children run as (user, group),
	// with UID and GID resolved; vigil must run as root.
	User, Group string
	UID, GID    int
	// EnvFile is the absolute path of the dotenv file read (env_file), ""
	// if none; its variables are in Env, under env's own.
	EnvFile string
	// StopSignal is the first signal of a graceful stop (stop_signal,
	// default "SIGINT").
	StopSignal string
	// StartLimitBurst and StartLimitInterval: more starts than the burst
	// within the interval fail the instance (start_limit = { burst,
	// interval }); 0 = no limit.
	StartLimitBurst    int
	StartLimitInterval Duration
	// Port, when not 0, is instance 0's port: instance i gets PORT=port+i,
	// and ${port} in command, env and probes (port).
	Port int
	// Reload is how a changed service is replaced on reload: "blue-green"
	// (default; "rolling" for a service with a port) or "rolling".
	Reload string
}

// Probe is a readiness or health check of a program that knows nothing of
// vigil: exactly one of HTTP, TCP and Exec, with ${instance}, ${service}
// and ${port} expanded per instance.
type Probe struct {
	// HTTP is a URL: passes on a 2xx or 3xx answer (http).
	HTTP string
	// TCP is an address: passes when it accepts a connection (tcp).
	TCP string
	// Exec is a command: passes when it exits 0 (exec).
	Exec []string
	// Interval between checks, Timeout of one (0: the defaults, 1s and 1s
	// for readiness, 10s and 1s for health).
	Interval, Timeout Duration
	// FailureThreshold checks failed in a row fail it; SuccessThreshold
	// passed in a row pass it (0: 3 and 1).
	FailureThreshold, SuccessThreshold int
	// InitialDelay before the first check.
	InitialDelay Duration
}

// Load reads and parses the file at path; relative paths in it resolve
// against its directory. getenv (nil = os.Getenv) supplies
// VIGIL_PROCESSOR_COUNT. Errors name the file, key and line.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseFile(data, path, filepath.Dir(abs), getenv)
}

// ParseFile parses data as the content of the file at path (which errors
// name), relative paths resolving against dir: what Load does once it has
// read the file, for a copy of the document read elsewhere.
func ParseFile(data []byte, path, dir string, getenv func(string) string) (*Config, error) {
	c, err := parse(data, dir, path, getenv)
	if err != nil {
		return nil, err
	}
	c.Path, c.Source = path, data
	return c, nil
}

// Parse parses a vigil.toml document. Relative paths resolve against dir
// ("" = the current directory). getenv (nil = os.Getenv) supplies
// VIGIL_PROCESSOR_COUNT. Errors name the key and line.
func Parse(data []byte, dir string, getenv func(string) string) (*Config, error) {
	return parse(data, dir, "", getenv)
}

// sortServices orders services by name.
func sortServices(s []Service) {
	sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
}
