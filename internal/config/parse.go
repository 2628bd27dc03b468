package config

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// The document's shape. Pointers tell a key left out from a zero value.
type fileConfig struct {
	Supervisor *fileSupervisor         `toml:"supervisor"`
	Services   map[string]*fileService `toml:"services"`
	Logs       *fileLogs               `toml:"logs"`
	Metrics    *fileMetrics            `toml:"metrics"`
}

type fileSupervisor struct {
	Socket      *string       `toml:"socket"`
	AllowUIDs   []int64       `toml:"allow_uids"`
	AllowGroups []any         `toml:"allow_groups"`
	SocketGroup *string       `toml:"socket_group"`
	LogFormat   *string       `toml:"log_format"`
	LogLevel    *string       `toml:"log_level"`
	Monitors    *fileMonitors `toml:"monitors"`

	MaxLineSize    *tomlSize     `toml:"max_line_size"`
	MaxStateSize   *tomlSize     `toml:"max_state_size"`
	MaxStateDepth  *int64        `toml:"max_state_depth"`
	MaxInFlight    *int64        `toml:"max_in_flight"`
	LineTimeout    *tomlDuration `toml:"line_timeout"`
	MaxConnections *int64        `toml:"max_connections"`

	Readers    *[]any `toml:"readers"`
	Operators  []any  `toml:"operators"`
	Diagnosers []any  `toml:"diagnosers"`
}

type fileMonitors struct {
	Memory  *fileMemory  `toml:"memory"`
	Process *fileProcess `toml:"process"`
}

type fileMemory struct {
	Interval         *tomlDuration                 `toml:"interval"`
	MaximumSizeLimit *tomlSize                     `toml:"maximum_size_limit"`
	TotalSizeLimit   *tomlSize                     `toml:"total_size_limit"`
	FreeSizeMinimum  *tomlSize                     `toml:"free_size_minimum"`
	IncreaseLimit    *int64                        `toml:"increase_limit"`
	ThresholdSize    *tomlSize                     `toml:"threshold_size"`
	MemorySample     *fileSample                   `toml:"memory_sample"`
	DumpDirectory    *string                       `toml:"dump_directory"`
	Services         map[string]*fileServiceMemory `toml:"services"`
}

type fileSample struct {
	Duration *tomlDuration `toml:"duration"`
	Timeout  *tomlDuration `toml:"timeout"`
}

type fileServiceMemory struct {
	MaximumSizeLimit *tomlSize `toml:"maximum_size_limit"`
	IncreaseLimit    *int64    `toml:"increase_limit"`
	ThresholdSize    *tomlSize `toml:"threshold_size"`
}

type fileProcess struct {
	Interval *tomlDuration `toml:"interval"`
	PPID     *int64        `toml:"ppid"`
}

type fileService struct {
	Command            []string          `toml:"command"`
	Count              *int64            `toml:"count"`
	Restart            *bool             `toml:"restart"`
	StartupTimeout     *tomlDuration     `toml:"startup_timeout"`
	HealthCheckTimeout *tomlDuration     `toml:"health_check_timeout"`
	GracefulStop       *tomlDuration     `toml:"graceful_stop"`
	RestartDelay       *tomlDuration     `toml:"restart_delay"`
	RestartDelayMax    *tomlDuration     `toml:"restart_delay_max"`
	StableAfter        *tomlDuration     `toml:"stable_after"`
	Dir                *string           `toml:"dir"`
	Env                map[string]string `toml:"env"`
	Supervised         *bool             `toml:"supervised"`
	Readiness          any               `toml:"readiness"`
	Health             *fileProbe        `toml:"health"`
	Logs               *fileLogs         `toml:"logs"`
	Required           *bool             `toml:"required"`
	Autostart          *bool             `toml:"autostart"`
	OwnCgroup          *bool             `toml:"own_cgroup"`
	User               *string           `toml:"user"`
	Group              *string           `toml:"group"`
	EnvFile            *string           `toml:"env_file"`
	StopSignal         *string           `toml:"stop_signal"`
	StartLimit         *fileStartLimit   `toml:"start_limit"`
	Port               *int64            `toml:"port"`
	Reload             *string           `toml:"reload"`
}

// tomlDuration and tomlSize take only TOML strings, parsed while
// validating, where the key's place is known. (As int64 kinds, Duration
// and Size would take a TOML integer as nanoseconds or bytes, and go-toml
// reports a TextUnmarshaler's error on an integer without its place.)
type (
	tomlDuration string
	tomlSize     string
)

var serviceName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// maxSocketPath is the longest path a Unix socket address holds.
const maxSocketPath = 107

// validator collects every problem of a document: those of decoding (see
// decode.go) and those of the checks that follow, each at its key's place.
// A check reports a problem with fail, naming the key; Parse returns them
// all, in the order of the document.
type validator struct {
	path string
	pos  positions
	errs []*Error
	// bad holds the keys whose value could not be decoded: they are left
	// out of the result, and fail says nothing more about them.
	bad map[string]bool
	// suggested holds the keys an unknown key was taken for a misspelling
	// of: when such a key is absent, its absence is that misspelling,
	// already reported.
	suggested map[string]bool
}

// fail records a problem with the value at key (a dotted path such as
// services.web.count): ErrInvalid, placed at the key's line and column, or
// its nearest ancestor's when the key is not in the document (a default).
// A key whose value had the wrong type was already reported, and so was an
// absent key that an unknown key is a misspelling of ("comand" for
// command): fail skips them.
func (v *validator) fail(key []string, format string, args ...any) {
	for n := len(key); n > 0; n-- {
		if v.bad[pathKey(key[:n])] {
			return
		}
	}
	if _, present := v.pos.first[pathKey(key)]; !present && v.suggested[pathKey(key)] {
		return
	}
	v.add(key, ErrInvalid, fmt.Errorf(format, args...))
}

// add records a problem of a kind at key's place.
func (v *validator) add(key []string, kind, err error) {
	p := v.pos.lookup(key)
	v.errs = append(v.errs, &Error{Path: v.path, Line: p.line, Column: p.column,
		Key: formatKey(key), Err: err, kind: kind})
}

// markBad marks a key whose value was not decoded.
func (v *validator) markBad(key []string) {
	if v.bad == nil {
		v.bad = make(map[string]bool)
	}
	v.bad[pathKey(key)] = true
}

// err returns the problems in the document's order (problems without a
// place first): nil, one *Error, or several joined with errors.Join.
func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	sort.SliceStable(v.errs, func(i, j int) bool {
		a, b := v.errs[i], v.errs[j]
		return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
	})
	if len(v.errs) == 1 {
		return v.errs[0]
	}
	errs := make([]error, len(v.errs))
	for i, e := range v.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func parse(data []byte, dir, path string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if dir == "" {
		dir = "."
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var f fileConfig
	v := &validator{path: path}
	if err := decodeDocument(data, &f, v); err != nil {
		return nil, decodeError(path, data, err)
	}
	c := &Config{Dir: dir}

	defaultCount := runtime.NumCPU()
	if s := getenv(EnvProcessorCount); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			v.errs = append(v.errs, &Error{Path: path, Key: EnvProcessorCount, kind: ErrInvalid,
				Err: fmt.Errorf("environment variable %s=%q is not a positive integer", EnvProcessorCount, s)})
		} else {
			defaultCount = n
		}
	}

	c.Supervisor = v.supervisor(f.Supervisor, dir)
	names := map[string]bool{}
	c.Logs = v.logs([]string{"logs"}, f.Logs, Logs{}, dir)
	c.Metrics = v.metrics(f.Metrics, dir)
	for name, fs := range f.Services {
		names[name] = true
		if s, ok := v.service(name, fs, dir, defaultCount); ok {
			s.Logs = v.logs([]string{"services", name, "logs"}, fs.logsTable(), c.Logs, dir)
			c.Services = append(c.Services, s)
		}
	}
	sortServices(c.Services)
	if m := c.Supervisor.Monitors.Memory; m != nil {
		for _, name := range sortedKeys(m.Services) {
			if !names[name] {
				v.fail([]string{"supervisor", "monitors", "memory", "services", name}, "no service %q is configured", name)
			}
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeError turns go-toml's parse error (a syntax error, a key defined
// twice) into an *Error.
func decodeError(path string, data []byte, err error) error {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		return &Error{Path: path, Line: line, Column: col, Key: formatKey(fullKey(indexPositions(data), de.Key(), line, col)),
			Err: errors.New(strings.TrimPrefix(de.Error(), "toml: ")), kind: ErrInvalid}
	}
	return &Error{Path: path, Err: err, kind: ErrInvalid}
}

// fullKey completes the key of a go-toml error at (line, col): go-toml
// names only the table of a duplicate key, and leaves out inline tables.
// The key at that very place is taken if there is one at least as long;
// otherwise
// (the error points at a value) the last key under key that starts on the
// error's line before its column.
func fullKey(pos positions, key []string, line, col int) []string {
	if p, ok := pos.at[position{line, col}]; ok && len(p) >= len(key) {
		return p
	}
	if len(key) == 0 || line == 0 {
		return key
	}
	best, bestCol := key, 0
	for here, parts := range pos.at {
		if here.line != line || here.column >= col || here.column < bestCol || len(parts) <= len(key) {
			continue
		}
		if slices.Equal(parts[:len(key)], key) {
			best, bestCol = parts, here.column
		}
	}
	return best
}

func (v *validator) supervisor(f *fileSupervisor, dir string) Supervisor {
	if f == nil {
		f = &fileSupervisor{}
	}
	key := func(k ...string) []string { return append([]string{"supervisor"}, k...) }
	s := Supervisor{Socket: resolve(dir, DefaultSocket), LogFormat: DefaultLogFormat, LogLevel: DefaultLogLevel}
	if f.Socket != nil {
		if *f.Socket == "" {
			v.fail(key("socket"), "must not be empty")
		}
		s.Socket = resolve(dir, *f.Socket)
	}
	if len(s.Socket) > maxSocketPath {
		v.fail(key("socket"), "socket path %q is %d bytes long, at most %d fit in a Unix socket address", s.Socket, len(s.Socket), maxSocketPath)
	}
	for _, uid := range f.AllowUIDs {
		if uid < 0 || uid > 1<<32-1 {
			v.fail(key("allow_uids"), "%d is not a user id", uid)
			continue
		}
		s.AllowUIDs = append(s.AllowUIDs, int(uid))
	}
	for _, g := range f.AllowGroups {
		var name string
		switch g := g.(type) {
		case string:
			name = g
		case int64:
			name = strconv.FormatInt(g, 10)
		default:
			v.fail(key("allow_groups"), "%v (%T) is neither a group name nor a gid", g, g)
			continue
		}
		gid, err := lookupGroup(name)
		if err != nil {
			v.fail(key("allow_groups"), "%v", err)
			continue
		}
		s.AllowGroups = append(s.AllowGroups, name)
		s.AllowGIDs = append(s.AllowGIDs, gid)
	}
	if f.SocketGroup != nil {
		gid, err := lookupGroup(*f.SocketGroup)
		if err != nil {
			v.fail(key("socket_group"), "%v", err)
		} else {
			s.SocketGroup, s.SocketGID = *f.SocketGroup, gid
		}
	}
	if f.LogFormat != nil {
		switch *f.LogFormat {
		case "text", "json":
			s.LogFormat = *f.LogFormat
		default:
			v.fail(key("log_format"), "%q is not a log format: want \"text\" or \"json\"", *f.LogFormat)
		}
	}
	if f.LogLevel != nil {
		switch *f.LogLevel {
		case "debug", "info", "warn", "error":
			s.LogLevel = *f.LogLevel
		default:
			v.fail(key("log_level"), "%q is not a log level: want \"debug\", \"info\", \"warn\" or \"error\"", *f.LogLevel)
		}
	}
	s.Limits = v.limits(f)
	if f.Readers != nil {
		p := v.principals(key("readers"), *f.Readers)
		s.Readers = &p
	}
	s.Operators = v.principals(key("operators"), f.Operators)
	s.Diagnosers = v.principals(key("diagnosers"), f.Diagnosers)
	if f.Monitors != nil {
		if f.Monitors.Memory != nil {
			s.Monitors.Memory = v.memory(f.Monitors.Memory, dir)
		}
		if f.Monitors.Process != nil {
			s.Monitors.Process = v.process(f.Monitors.Process)
		}
	}
	return s
}

// lookupGroup resolves a group name, or a decimal gid, to a gid.
func lookupGroup(name string) (int, error) {
	if name == "" {
		return 0, errors.New("empty group name")
	}
	if n, err := strconv.Atoi(name); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%d is not a gid", n)
		}
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", name, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q has gid %q: %w", name, g.Gid, err)
	}
	return gid, nil
}

func (v *validator) memory(f *fileMemory, dir string) *MemoryMonitor {
	key := func(k ...string) []string {
		return append([]string{"supervisor", "monitors", "memory"}, k...)
	}
	m := &MemoryMonitor{
		Interval:         v.duration(key("interval"), f.Interval, DefaultMemoryInterval),
		MaximumSizeLimit: v.size(key("maximum_size_limit"), f.MaximumSizeLimit, 0),
		TotalSizeLimit:   v.size(key("total_size_limit"), f.TotalSizeLimit, 0),
		FreeSizeMinimum:  v.size(key("free_size_minimum"), f.FreeSizeMinimum, 0),
		ThresholdSize:    v.size(key("threshold_size"), f.ThresholdSize, DefaultThresholdSize),
	}
	if f.Interval != nil {
		v.positive(key("interval"), m.Interval)
	}
	if f.IncreaseLimit != nil {
		m.IncreaseLimit = v.nonNegative(key("increase_limit"), *f.IncreaseLimit)
	}
	if f.MemorySample != nil {
		n := len(v.errs)
		s := &MemorySample{
			Duration: v.duration(key("memory_sample", "duration"), f.MemorySample.Duration, DefaultSampleDuration),
			Timeout:  v.duration(key("memory_sample", "timeout"), f.MemorySample.Timeout, DefaultSampleTimeout),
		}
		if f.MemorySample.Duration != nil {
			v.positive(key("memory_sample", "duration"), s.Duration)
		}
		if len(v.errs) == n && s.Timeout <= s.Duration {
			v.fail(key("memory_sample", "timeout"), "timeout %s must be longer than the sample's duration %s", s.Timeout, s.Duration)
		}
		m.MemorySample = s
	}
	if f.DumpDirectory != nil {
		if *f.DumpDirectory == "" {
			v.fail(key("dump_directory"), "must not be empty")
		}
		m.DumpDirectory = resolve(dir, *f.DumpDirectory)
	}
	for _, name := range sortedKeys(f.Services) {
		fs := f.Services[name]
		if fs == nil {
			fs = &fileServiceMemory{}
		}
		l := ServiceMemoryLimits{
			MaximumSizeLimit: v.size(key("services", name, "maximum_size_limit"), fs.MaximumSizeLimit, m.MaximumSizeLimit),
			IncreaseLimit:    m.IncreaseLimit,
			ThresholdSize:    v.size(key("services", name, "threshold_size"), fs.ThresholdSize, m.ThresholdSize),
		}
		if fs.IncreaseLimit != nil {
			l.IncreaseLimit = v.nonNegative(key("services", name, "increase_limit"), *fs.IncreaseLimit)
		}
		if m.Services == nil {
			m.Services = map[string]ServiceMemoryLimits{}
		}
		m.Services[name] = l
	}
	return m
}

func (v *validator) process(f *fileProcess) *ProcessMonitor {
	key := []string{"supervisor", "monitors", "process", "interval"}
	p := &ProcessMonitor{Interval: v.duration(key, f.Interval, DefaultProcessInterval)}
	if f.Interval != nil {
		v.positive(key, p.Interval)
	}
	if f.PPID != nil {
		p.PPID = v.nonNegative([]string{"supervisor", "monitors", "process", "ppid"}, *f.PPID)
	}
	return p
}

// duration parses a duration value; nil is def.
func (v *validator) duration(key []string, t *tomlDuration, def Duration) Duration {
	if t == nil {
		return def
	}
	var d Duration
	if err := d.UnmarshalText([]byte(*t)); err != nil {
		v.fail(key, "%w", err)
		return def
	}
	return d
}

// size parses a size value; nil is def.
func (v *validator) size(key []string, t *tomlSize, def Size) Size {
	if t == nil {
		return def
	}
	var s Size
	if err := s.UnmarshalText([]byte(*t)); err != nil {
		v.fail(key, "%w", err)
		return def
	}
	return s
}

func (v *validator) positive(key []string, d Duration) Duration {
	if d <= 0 {
		v.fail(key, "must be longer than zero, got %s", d)
	}
	return d
}

func (v *validator) nonNegative(key []string, n int64) int {
	if n < 0 || n > 1<<31-1 {
		v.fail(key, "must be between 0 and %d, got %d", 1<<31-1, n)
		return 0
	}
	return int(n)
}

func (v *validator) service(name string, f *fileService, dir string, defaultCount int) (Service, bool) {
	key := func(k ...string) []string { return append([]string{"services", name}, k...) }
	n := len(v.errs)
	if !serviceName.MatchString(name) {
		v.fail(key(), "bad service name %q: want letters, digits, '_' and '-'", name)
	} else if name == ReservedServiceName {
		v.fail(key(), "the service name %q is reserved for vigil's own supervisor", name)
	}
	if f == nil {
		f = &fileService{}
	}
	s := Service{
		Name: name, Count: defaultCount, Restart: true, GracefulStop: DefaultGracefulStop,
		RestartDelay: DefaultRestartDelay, RestartDelayMax: DefaultRestartDelayMax,
		StableAfter: DefaultStableAfter, Dir: dir, Supervised: true, Readiness: ReadinessNotify,
	}
	switch {
	case len(f.Command) == 0:
		v.fail(key("command"), "a command is required: an array of the program and its arguments")
	case f.Command[0] == "":
		v.fail(key("command"), "the program (the command's first element) must not be empty")
	default:
		s.Command = append([]string(nil), f.Command...)
		for i, arg := range f.Command {
			if strings.ContainsRune(arg, 0) {
				v.fail(key("command"), "argument %d (%q) contains a NUL byte, which no program can be given", i, arg)
			}
		}
	}
	if f.Count != nil {
		if *f.Count < 1 || *f.Count > 1<<20 {
			v.fail(key("count"), "must be between 1 and %d, got %d", 1<<20, *f.Count)
		} else {
			s.Count = int(*f.Count)
		}
	}
	if f.Restart != nil {
		s.Restart = *f.Restart
	}
	s.StartupTimeout = v.duration(key("startup_timeout"), f.StartupTimeout, 0)
	s.HealthCheckTimeout = v.duration(key("health_check_timeout"), f.HealthCheckTimeout, 0)
	s.GracefulStop = v.duration(key("graceful_stop"), f.GracefulStop, DefaultGracefulStop)
	s.RestartDelay = v.duration(key("restart_delay"), f.RestartDelay, DefaultRestartDelay)
	s.RestartDelayMax = v.duration(key("restart_delay_max"), f.RestartDelayMax, DefaultRestartDelayMax)
	s.StableAfter = v.duration(key("stable_after"), f.StableAfter, DefaultStableAfter)
	if s.RestartDelayMax < s.RestartDelay {
		k := key("restart_delay_max")
		if f.RestartDelayMax == nil {
			k = key("restart_delay")
		}
		v.fail(k, "restart_delay_max %s is shorter than restart_delay %s", s.RestartDelayMax, s.RestartDelay)
	}
	if f.Dir != nil {
		if *f.Dir == "" {
			v.fail(key("dir"), "must not be empty")
		}
		s.Dir = resolve(dir, *f.Dir)
	}
	for _, k := range sortedKeys(f.Env) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			v.fail(key("env", k), "bad environment variable name %q", k)
		}
		if strings.ContainsRune(f.Env[k], 0) {
			v.fail(key("env", k), "the value contains a NUL byte")
		}
	}
	if len(f.Env) > 0 {
		s.Env = make(map[string]string, len(f.Env))
		for k, val := range f.Env {
			s.Env[k] = val
		}
	}
	if f.Supervised != nil {
		s.Supervised = *f.Supervised
	}
	v.serviceExtras(&s, f, key, dir)
	return s, len(v.errs) == n
}

// resolve makes p absolute against dir.
func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
