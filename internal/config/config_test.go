package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func mustParse(t *testing.T, doc string, getenv func(string) string) *Config {
	t.Helper()
	c, err := Parse([]byte(doc), "/etc/vigil", getenv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, "[services.web]\ncommand = [\"bin/web\"]\n", env(EnvProcessorCount, "3"))
	want := &Config{
		Dir: "/etc/vigil",
		Supervisor: Supervisor{
			Socket:    "/etc/vigil/supervisor.ipc",
			LogFormat: "text",
			LogLevel:  "info",
			Limits: SupervisorLimits{MaxLineSize: 8 * MiB, MaxStateSize: 64 * KiB, MaxStateDepth: 32,
				MaxInFlight: 16, LineTimeout: Duration(10 * time.Second), MaxConnections: 10000},
		},
		Services: []Service{{
			Name:            "web",
			Command:         []string{"bin/web"},
			Count:           3,
			Restart:         true,
			GracefulStop:    Duration(10 * time.Second),
			RestartDelay:    Duration(100 * time.Millisecond),
			RestartDelayMax: Duration(30 * time.Second),
			StableAfter:     Duration(10 * time.Second),
			Dir:             "/etc/vigil",
			Supervised:      true,
			Readiness:       ReadinessNotify,
			Autostart:       true,
			OwnCgroup:       true,
			StopSignal:      "SIGINT",
			Reload:          ReloadBlueGreen,
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", c, want)
	}
}

func TestEmptyDocument(t *testing.T) {
	c := mustParse(t, "# nothing but a comment\n", nil)
	if len(c.Services) != 0 || c.Supervisor.Socket != "/etc/vigil/supervisor.ipc" ||
		c.Supervisor.Monitors.Memory != nil || c.Supervisor.Monitors.Process != nil {
		t.Fatalf("got %+v", c)
	}
}

func TestCountDefaultsToCPUs(t *testing.T) {
	c := mustParse(t, "[services.web]\ncommand = [\"w\"]\n", env())
	if c.Services[0].Count != runtime.NumCPU() {
		t.Fatalf("count %d, want %d CPUs", c.Services[0].Count, runtime.NumCPU())
	}
	// An explicit count beats the variable.
	c = mustParse(t, "[services.web]\ncommand = [\"w\"]\ncount = 2\n", env(EnvProcessorCount, "7"))
	if c.Services[0].Count != 2 {
		t.Fatalf("count %d, want 2", c.Services[0].Count)
	}
}

func TestProcessorCountBad(t *testing.T) {
	for _, v := range []string{"0", "-2", "many", "1.5"} {
		_, err := Parse([]byte("[services.web]\ncommand = [\"w\"]\n"), "/", env(EnvProcessorCount, v))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != EnvProcessorCount || !errors.Is(err, ErrInvalid) ||
			!strings.Contains(err.Error(), EnvProcessorCount) || !strings.Contains(err.Error(), fmt.Sprintf("%q", v)) {
			t.Errorf("%s=%q: got %v", EnvProcessorCount, v, err)
		}
	}
}

func TestMonitorDefaults(t *testing.T) {
	c := mustParse(t, `
[supervisor.monitors.memory]
memory_sample = {}
[supervisor.monitors.memory.services.web]
[supervisor.monitors.process]
[services.web]
command = ["w"]
`, env(EnvProcessorCount, "1"))
	wantMem := &MemoryMonitor{
		Interval:      Duration(10 * time.Second),
		ThresholdSize: 10 * MiB,
		MemorySample:  &MemorySample{Duration: Duration(time.Second), Timeout: Duration(10 * time.Second)},
		Services:      map[string]ServiceMemoryLimits{"web": {ThresholdSize: 10 * MiB}},
	}
	if got := c.Supervisor.Monitors.Memory; !reflect.DeepEqual(got, wantMem) {
		t.Fatalf("memory: got %+v, want %+v", got, wantMem)
	}
	if got := c.Supervisor.Monitors.Process; !reflect.DeepEqual(got, &ProcessMonitor{Interval: Duration(time.Minute)}) {
		t.Fatalf("process: got %+v", got)
	}
	// An empty [supervisor.monitors] turns nothing on; no memory_sample is off.
	c = mustParse(t, "[supervisor.monitors]\n", nil)
	if c.Supervisor.Monitors.Memory != nil || c.Supervisor.Monitors.Process != nil {
		t.Fatalf("got %+v", c.Supervisor.Monitors)
	}
	c = mustParse(t, "[supervisor.monitors.memory]\n", nil)
	if c.Supervisor.Monitors.Memory.MemorySample != nil {
		t.Fatal("memory_sample should be off when absent")
	}
}

const fullDoc = `# every key
[supervisor]
socket = "run/sv.ipc"
allow_uids = [0, 1000]
allow_groups = ["root", 0, "4242"]
socket_group = "root"
log_format = "json"
log_level = "debug"
max_line_size = "16MiB"
max_state_size = "128KiB"
max_state_depth = 16
max_in_flight = 32
line_timeout = "5s"
max_connections = 2000
readers = ["root", "group:4242"]
operators = ["user:root", "user:1000"]
diagnosers = []

[supervisor.monitors.memory]
interval = "5s"
maximum_size_limit = "500MiB"
total_size_limit = "2GiB"
free_size_minimum = "100MB"
increase_limit = 3
threshold_size = "20MiB"
memory_sample = { duration = "2s", timeout = "30s" }
dump_directory = "dumps"

[supervisor.monitors.memory.services.web]
maximum_size_limit = "1GiB"

[supervisor.monitors.memory.services.jobs]
increase_limit = 5
threshold_size = "1MiB"

[supervisor.monitors.process]
interval = "30s"
ppid = 1234

[services.web]
command = ["bin/web", "--port", "8080"]
count = 4
restart = false
startup_timeout = "1m"
health_check_timeout = "30s"
graceful_stop = "5s"
restart_delay = "200ms"
restart_delay_max = "1m"
stable_after = "20s"
dir = "/srv/web"
env = { PORT = "8080", "DB_URL" = "postgres://x=y" }
supervised = false
readiness = "started"

[services.jobs]
command = ["bin/jobs"]
count = 1
dir = "jobs"
`

func TestFull(t *testing.T) {
	c := mustParse(t, fullDoc, env(EnvProcessorCount, "8"))
	wantSup := Supervisor{
		Socket: "/etc/vigil/run/sv.ipc", AllowUIDs: []int{0, 1000},
		AllowGroups: []string{"root", "0", "4242"}, AllowGIDs: []int{0, 0, 4242},
		SocketGroup: "root", SocketGID: 0, LogFormat: "json", LogLevel: "debug",
		Limits: SupervisorLimits{MaxLineSize: 16 * MiB, MaxStateSize: 128 * KiB, MaxStateDepth: 16,
			MaxInFlight: 32, LineTimeout: Duration(5 * time.Second), MaxConnections: 2000},
		Readers:   &Principals{Names: []string{"root", "group:4242"}, GIDs: []int{0, 4242}},
		Operators: Principals{Names: []string{"user:root", "user:1000"}, UIDs: []int{0, 1000}},
		Monitors: Monitors{
			Memory: &MemoryMonitor{
				Interval: Duration(5 * time.Second), MaximumSizeLimit: 500 * MiB, TotalSizeLimit: 2 * GiB,
				FreeSizeMinimum: 100 * MB, IncreaseLimit: 3, ThresholdSize: 20 * MiB,
				MemorySample:  &MemorySample{Duration: Duration(2 * time.Second), Timeout: Duration(30 * time.Second)},
				DumpDirectory: "/etc/vigil/dumps",
				Services: map[string]ServiceMemoryLimits{
					"web":  {MaximumSizeLimit: GiB, IncreaseLimit: 3, ThresholdSize: 20 * MiB},
					"jobs": {MaximumSizeLimit: 500 * MiB, IncreaseLimit: 5, ThresholdSize: MiB},
				},
			},
			Process: &ProcessMonitor{Interval: Duration(30 * time.Second), PPID: 1234},
		},
	}
	if !reflect.DeepEqual(c.Supervisor, wantSup) {
		t.Fatalf("supervisor:\ngot  %+v\nwant %+v", c.Supervisor, wantSup)
	}
	if len(c.Services) != 2 || c.Services[0].Name != "jobs" || c.Services[1].Name != "web" {
		t.Fatalf("services not sorted by name: %+v", c.Services)
	}
	web, ok := c.Service("web")
	wantWeb := Service{
		Name: "web", Command: []string{"bin/web", "--port", "8080"}, Count: 4, Restart: false,
		StartupTimeout: Duration(time.Minute), HealthCheckTimeout: Duration(30 * time.Second),
		GracefulStop: Duration(5 * time.Second), RestartDelay: Duration(200 * time.Millisecond),
		RestartDelayMax: Duration(time.Minute), StableAfter: Duration(20 * time.Second),
		Dir: "/srv/web", Env: map[string]string{"PORT": "8080", "DB_URL": "postgres://x=y"},
		Supervised: false, Readiness: ReadinessStarted,
		Autostart: true, OwnCgroup: true, StopSignal: "SIGINT", Reload: ReloadBlueGreen,
	}
	if !ok || !reflect.DeepEqual(web, wantWeb) {
		t.Fatalf("web:\ngot  %+v\nwant %+v", web, wantWeb)
	}
	jobs, _ := c.Service("jobs")
	if jobs.Dir != "/etc/vigil/jobs" || jobs.Count != 1 {
		t.Fatalf("jobs: %+v", jobs)
	}
	if _, ok := c.Service("nope"); ok {
		t.Fatal("Service(nope) found something")
	}
	m := c.Supervisor.Monitors.Memory
	if got := m.LimitsFor("other"); got != (ServiceMemoryLimits{MaximumSizeLimit: 500 * MiB, IncreaseLimit: 3, ThresholdSize: 20 * MiB}) {
		t.Fatalf("LimitsFor(other) = %+v", got)
	}
}

func TestErrors(t *testing.T) {
	const web = "[services.web]\ncommand = [\"w\"]\n"
	tests := []struct {
		name string
		doc  string
		key  string
		line int
		kind error
		msg  string
	}{
		{"unknown top-level key", "verbose = true\n", "verbose", 1, ErrUnknownKey, "unknown key"},
		{"unknown table", "\n[logging]\nlevel = 1\n", "logging", 2, ErrUnknownKey, "unknown key"},
		{"unknown supervisor key", "[supervisor]\nsocket = \"s\"\nsokcet = \"t\"\n", "supervisor.sokcet", 3, ErrUnknownKey, "unknown key"},
		{"unknown service key", web + "comand = [\"x\"]\n", "services.web.comand", 3, ErrUnknownKey, "unknown key"},
		{"unknown monitor", "[supervisor.monitors.cpu]\n", "supervisor.monitors.cpu", 1, ErrUnknownKey, "unknown key"},
		{"unknown inline key", "[supervisor.monitors.memory]\nmemory_sample = { duration = \"1s\", timout = \"5s\" }\n", "supervisor.monitors.memory.memory_sample.timout", 2, ErrUnknownKey, "unknown key"},
		{"unknown per-service limit", web + "[supervisor.monitors.memory.services.web]\ntotal_size_limit = \"1GiB\"\n", "supervisor.monitors.memory.services.web.total_size_limit", 4, ErrUnknownKey, "unknown key"},
		{"wrong type count", web + "count = \"4\"\n", "services.web.count", 3, ErrInvalid, "a TOML string where an integer is wanted"},
		{"wrong type command", "[services.web]\ncommand = \"bin/web\"\n", "services.web.command", 2, ErrInvalid, "where an array of strings is wanted"},
		{"wrong type restart", web + "restart = \"yes\"\n", "services.web.restart", 3, ErrInvalid, "where a boolean is wanted"},
		{"wrong type env value", web + "env = { A = 1 }\n", "services.web.env.A", 3, ErrInvalid, "where a string is wanted"},
		{"wrong type service", "[services]\nweb = 1\n", "services.web", 2, ErrInvalid, "where a table is wanted"},
		{"integer duration", web + "graceful_stop = 10\n", "services.web.graceful_stop", 3, ErrInvalid, "where a duration string"},
		{"integer size", "[supervisor.monitors.memory]\nthreshold_size = 10\n", "supervisor.monitors.memory.threshold_size", 2, ErrInvalid, "where a size string"},
		{"bad duration", web + "startup_timeout = \"10 seconds\"\n", "services.web.startup_timeout", 3, ErrInvalid, "invalid duration"},
		{"negative duration", web + "restart_delay = \"-1s\"\n", "services.web.restart_delay", 3, ErrInvalid, "negative"},
		{"bad inline duration", "[supervisor.monitors.memory]\nmemory_sample = { duration = \"1s\", timeout = \"x\" }\n", "supervisor.monitors.memory.memory_sample.timeout", 2, ErrInvalid, "invalid duration"},
		{"zero interval", "[supervisor.monitors.process]\ninterval = \"0s\"\n", "supervisor.monitors.process.interval", 2, ErrInvalid, "longer than zero"},
		{"sample timeout too short", "[supervisor.monitors.memory]\nmemory_sample = { duration = \"5s\", timeout = \"5s\" }\n", "supervisor.monitors.memory.memory_sample.timeout", 2, ErrInvalid, "longer than"},
		{"bad size", "[supervisor.monitors.memory]\nmaximum_size_limit = \"500 megs\"\n", "supervisor.monitors.memory.maximum_size_limit", 2, ErrInvalid, "invalid size"},
		{"negative size", "[supervisor.monitors.memory]\n\ntotal_size_limit = \"-1GiB\"\n", "supervisor.monitors.memory.total_size_limit", 3, ErrInvalid, "negative"},
		{"bad per-service size", web + "[supervisor.monitors.memory.services.web]\nmaximum_size_limit = \"big\"\n", "supervisor.monitors.memory.services.web.maximum_size_limit", 4, ErrInvalid, "invalid size"},
		{"limits for unknown service", web + "[supervisor.monitors.memory.services.api]\nincrease_limit = 2\n", "supervisor.monitors.memory.services.api", 3, ErrInvalid, `no service "api"`},
		{"negative increase_limit", "[supervisor.monitors.memory]\nincrease_limit = -1\n", "supervisor.monitors.memory.increase_limit", 2, ErrInvalid, "got -1"},
		{"negative ppid", "[supervisor.monitors.process]\nppid = -5\n", "supervisor.monitors.process.ppid", 2, ErrInvalid, "got -5"},
		{"negative count", web + "count = -1\n", "services.web.count", 3, ErrInvalid, "got -1"},
		{"zero count", web + "count = 0\n", "services.web.count", 3, ErrInvalid, "got 0"},
		{"float count", web + "count = 1.5\n", "services.web.count", 3, ErrInvalid, "a TOML float"},
		{"empty command", "[services.web]\ncommand = []\n", "services.web.command", 2, ErrInvalid, "a command is required"},
		{"missing command", "\n[services.web]\ncount = 1\n", "services.web.command", 2, ErrInvalid, "a command is required"},
		{"empty program", "[services.web]\ncommand = [\"\", \"x\"]\n", "services.web.command", 2, ErrInvalid, "must not be empty"},
		{"bad readiness", web + "readiness = \"ready\"\n", "services.web.readiness", 3, ErrInvalid, `"ready" is not a readiness`},
		{"bad log format", "[supervisor]\nlog_format = \"xml\"\n", "supervisor.log_format", 2, ErrInvalid, `"xml"`},
		{"bad log level", "[supervisor]\nlog_level = \"loud\"\n", "supervisor.log_level", 2, ErrInvalid, `"loud" is not a log level`},
		{"zero in flight", "[supervisor]\nmax_in_flight = 0\n", "supervisor.max_in_flight", 2, ErrInvalid, "between 1 and"},
		{"deep state depth", "[supervisor]\nmax_state_depth = 5000\n", "supervisor.max_state_depth", 2, ErrInvalid, "between 1 and 1000"},
		{"no connections", "[supervisor]\nmax_connections = -3\n", "supervisor.max_connections", 2, ErrInvalid, "got -3"},
		{"zero line timeout", "[supervisor]\nline_timeout = \"0s\"\n", "supervisor.line_timeout", 2, ErrInvalid, "longer than zero"},
		{"tiny line", "[supervisor]\nmax_line_size = \"1KiB\"\n", "supervisor.max_line_size", 2, ErrInvalid, "between 64KiB and 1GiB"},
		{"tiny state", "[supervisor]\nmax_state_size = \"100B\"\n", "supervisor.max_state_size", 2, ErrInvalid, "at least 1KiB"},
		{"state over the line", "[supervisor]\nmax_line_size = \"1MiB\"\nmax_state_size = \"1MiB\"\n", "supervisor.max_state_size", 3, ErrInvalid, "over half of max_line_size"},
		{"unknown reader group", "[supervisor]\nreaders = [\"no-such-group-vigil-test\"]\n", "supervisor.readers", 2, ErrInvalid, `(a user is written "user:NAME")`},
		{"unknown operator", "[supervisor]\noperators = [\"user:no-such-user-vigil-test\"]\n", "supervisor.operators", 2, ErrInvalid, "no-such-user-vigil-test"},
		{"numeric diagnoser", "[supervisor]\ndiagnosers = [1000]\n", "supervisor.diagnosers", 2, ErrInvalid, `write "group:NAME" or "user:NAME"`},
		{"bad principal kind", "[supervisor]\noperators = [\"uid:1000\"]\n", "supervisor.operators", 2, ErrInvalid, `"uid" is neither "user" nor "group"`},
		{"bad service name", "[services.\"web.1\"]\ncommand = [\"w\"]\n", `services."web.1"`, 1, ErrInvalid, "bad service name"},
		{"bad service name space", "[services.\"my web\"]\ncommand = [\"w\"]\n", `services."my web"`, 1, ErrInvalid, "bad service name"},
		{"reserved service name", "[services.supervisor]\ncommand = [\"w\"]\n", "services.supervisor", 1, ErrInvalid, "reserved"},
		{"delay max below delay", web + "restart_delay = \"1m\"\nrestart_delay_max = \"1s\"\n", "services.web.restart_delay_max", 4, ErrInvalid, "shorter than"},
		{"delay above default max", web + "restart_delay = \"1m\"\n", "services.web.restart_delay", 3, ErrInvalid, "shorter than"},
		{"bad env name", web + "env = { \"A=B\" = \"x\" }\n", `services.web.env."A=B"`, 3, ErrInvalid, "bad environment variable name"},
		{"empty dir", web + "dir = \"\"\n", "services.web.dir", 3, ErrInvalid, "must not be empty"},
		{"bad uid", "[supervisor]\nallow_uids = [-1]\n", "supervisor.allow_uids", 2, ErrInvalid, "not a user id"},
		{"unknown group", "[supervisor]\nallow_groups = [\n  \"no-such-group-vigil-test\",\n]\n", "supervisor.allow_groups", 2, ErrInvalid, "no-such-group-vigil-test"},
		{"float group", "[supervisor]\nallow_groups = [1.5]\n", "supervisor.allow_groups", 2, ErrInvalid, "neither a group name nor a gid"},
		{"unknown socket group", "[supervisor]\nsocket_group = \"no-such-group-vigil-test\"\n", "supervisor.socket_group", 2, ErrInvalid, "no-such-group-vigil-test"},
		{"socket too long", "[supervisor]\nsocket = \"" + strings.Repeat("s", 120) + "\"\n", "supervisor.socket", 2, ErrInvalid, "at most 107"},
		{"syntax", "[services.web\ncommand = [\"w\"]\n", "", 1, ErrInvalid, "expected ']'"},
		{"duplicate key", web + "count = 1\ncount = 2\n", "services.web.count", 4, ErrInvalid, "count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc), "/etc/vigil", env(EnvProcessorCount, "2"))
			if err == nil {
				t.Fatalf("no error; got %+v", c)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("%T %v is not an *Error", err, err)
			}
			if ce.Line != tt.line || (tt.key != "" && ce.Key != tt.key) {
				t.Errorf("got key %q line %d, want key %q line %d (%v)", ce.Key, ce.Line, tt.key, tt.line, err)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %v is not %v", err, tt.kind)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("line %d: ", tt.line)) || !strings.Contains(msg, tt.key) || !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q should name line %d, key %q and say %q", msg, tt.line, tt.key, tt.msg)
			}
		})
	}
}

func TestSeveralErrors(t *testing.T) {
	doc := "[services.b]\ncommand = []\n[services.a]\ncommand = [\"a\"]\ncount = 0\n"
	_, err := Parse([]byte(doc), "/", nil)
	if err == nil {
		t.Fatal("want errors")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "line 2: services.b.command") || !strings.HasPrefix(lines[1], "line 5: services.a.count") {
		t.Fatalf("want both errors by line, got %q", err.Error())
	}
	doc = "x = 1\n[supervisor]\ny = 2\n"
	_, err = Parse([]byte(doc), "/", nil)
	if err == nil || !strings.Contains(err.Error(), "line 1: x: unknown key x: the top-level tables are logs, metrics, services and supervisor\n"+
		"line 3: supervisor.y: unknown key y: the keys of [supervisor] are allow_groups, allow_uids, diagnosers, line_timeout, log_format, log_level, max_connections, max_in_flight, max_line_size, max_state_depth, max_state_size, monitors, operators, readers, socket, socket_group") {
		t.Fatalf("want both unknown keys, got %v", err)
	}
}

// Every problem of a document, of every kind, in the document's order;
// a misspelt key gets the nearest one as a suggestion (and the key it
// meant is not reported missing as well).
func TestEveryErrorInFileOrder(t *testing.T) {
	doc := `verbose = true
[supervisor]
sokcet = "x"
log_format = 5
[services.web]
comand = ["w"]
count = "4"
restart_delay = "1 s"
env = { B = "ok", A = 1 }
[services.api]
command = ["a", 2]
count = 0
[supervisor.monitors.memory]
memory_sample = { duration = "1s", timout = "5s" }
`
	_, err := Parse([]byte(doc), "/", env(EnvProcessorCount, "2"))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"line 1: verbose: unknown key verbose: the top-level tables are logs, metrics, services and supervisor",
		"line 3: supervisor.sokcet: unknown key sokcet: did you mean socket?",
		"line 4: supervisor.log_format: wrong type: a TOML integer where a string is wanted",
		"line 6: services.web.comand: unknown key comand: did you mean command?",
		"line 7: services.web.count: wrong type: a TOML string where an integer is wanted",
		"line 8: services.web.restart_delay: invalid duration",
		"line 9: services.web.env.A: wrong type: a TOML integer where a string is wanted",
		"line 11: services.api.command: wrong type: element 2 is a TOML integer where a string is wanted",
		"line 12: services.api.count: must be between 1 and 1048576, got 0",
		"line 14: supervisor.monitors.memory.memory_sample.timout: unknown key timout: did you mean timeout?",
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d errors, want %d:\n%s", len(got), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d:\n got %s\nwant %s...", i+1, got[i], want[i])
		}
	}
	var first *Error
	if !errors.As(err, &first) || first.Line != 1 || !errors.Is(err, ErrUnknownKey) || !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.As finds %+v; errors.Is both kinds: %v, %v", first, errors.Is(err, ErrUnknownKey), errors.Is(err, ErrInvalid))
	}
}

func TestNearestKey(t *testing.T) {
	keys := []string{"command", "count", "restart_delay", "restart_delay_max", "health_check_timeout", "dir", "env", "socket", "timeout"}
	for name, want := range map[string]string{
		"comand":               "command",
		"Command":              "command",
		"cuont":                "count",
		"sokcet":               "socket",
		"timout":               "timeout",
		"restart_dealy":        "restart_delay",
		"health_check_timout":  "health_check_timeout",
		"verbose":              "",
		"x":                    "",
		"dri":                  "dir",
		"health_timeout":       "",
		"restart_delay_maxxxx": "restart_delay_max",
		"stop_signal":          "",
	} {
		if got := nearest(name, keys); got != want {
			t.Errorf("nearest(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vigil.toml")
	if err := os.WriteFile(path, []byte("[services.web]\ncommand = [\"./web\"]\ndir = \"app\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, env(EnvProcessorCount, "1"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != path || c.Dir != dir || c.Supervisor.Socket != filepath.Join(dir, "supervisor.ipc") || c.Services[0].Dir != filepath.Join(dir, "app") {
		t.Fatalf("got %+v", c)
	}

	// A relative path resolves against the file's directory, not the cwd.
	t.Chdir(dir)
	c, err = Load("vigil.toml", env(EnvProcessorCount, "1"))
	if err != nil || c.Dir != dir {
		t.Fatalf("got %+v, %v", c, err)
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[services.web]\ncommand = [\"w\"]\ncount = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad, nil)
	if err == nil || !strings.HasPrefix(err.Error(), bad+":3: services.web.count: ") {
		t.Fatalf("want PATH:LINE: KEY:, got %v", err)
	}
	if _, err := Load(filepath.Join(dir, "absent.toml"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("want fs.ErrNotExist, got %v", err)
	}
}

func TestParseRelativeDir(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	c, err := Parse(nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Dir != dir || c.Supervisor.Socket != filepath.Join(dir, "supervisor.ipc") {
		t.Fatalf("got %+v", c)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, doc := range []string{fullDoc, "", "[services.web]\ncommand = [\"w\"]\n", "[supervisor.monitors.memory]\n", "[supervisor]\nreaders = []\n"} {
		c := mustParse(t, doc, env(EnvProcessorCount, "3"))
		var buf bytes.Buffer
		if err := c.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		// Another directory and processor count: the effective config
		// says everything, so neither matters.
		back, err := Parse(buf.Bytes(), "/elsewhere", env(EnvProcessorCount, "9"))
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, buf.String())
		}
		back.Dir = c.Dir
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip differs:\n%s\ngot  %+v\nwant %+v", buf.String(), back, c)
		}
		var again bytes.Buffer
		if err := back.Encode(&again); err != nil || again.String() != buf.String() {
			t.Fatalf("second encoding differs: %v\n%s\n---\n%s", err, buf.String(), again.String())
		}
	}
}

func TestEncodeText(t *testing.T) {
	c := mustParse(t, "[services.web]\ncommand = [\"w\"]\n", env(EnvProcessorCount, "2"))
	var buf bytes.Buffer
	if err := c.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"socket = '/etc/vigil/supervisor.ipc'", "[services.web]", "count = 2", "graceful_stop = '10s'",
		"restart_delay = '100ms'", "restart_delay_max = '30s'", "stable_after = '10s'", "readiness = 'notify'",
		"dir = '/etc/vigil'", "supervised = true", "restart = true",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("effective configuration lacks %q:\n%s", want, buf.String())
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(fullDoc)
	f.Add("[services.web]\ncommand = [\"w\"]\ncount = 0\n")
	f.Add("[supervisor.monitors.memory]\nmemory_sample = { duration = \"1s\", x = 1 }\n")
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := Parse([]byte(doc), "/etc/vigil", env(EnvProcessorCount, "2"))
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("%T %v is not an *Error", err, err)
			}
			return
		}
		var buf bytes.Buffer
		if err := c.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := Parse(buf.Bytes(), "/etc/vigil", env(EnvProcessorCount, "2"))
		if err != nil {
			t.Fatalf("effective configuration does not parse: %v\n%s", err, buf.String())
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip differs:\n%s", buf.String())
		}
	})
}
