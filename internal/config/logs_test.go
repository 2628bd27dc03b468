package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestLogsTables(t *testing.T) {
	c := mustParse(t, `
[logs]
format = "json"
dir = "logs"
max_size = "10MiB"
keep = 3
compress = true
lines = 500

[services.web]
command = ["web"]

[services.web.logs]
console = false
keep = 0
dir = "/var/log/web"

[services.job]
command = ["job"]
logs = { journal = true, dir = "", format = "text" }

[services.quiet]
command = ["quiet"]
`, env(EnvProcessorCount, "1"))
	yes, no, zero, three := true, false, 0, 3
	dir, webDir, none := "/etc/vigil/logs", "/var/log/web", ""
	global := Logs{Format: "json", Dir: &dir, MaxSize: 10 << 20, Keep: &three, Compress: &yes, Lines: 500}
	if !reflect.DeepEqual(c.Logs, global) {
		t.Errorf("[logs]: %+v", c.Logs)
	}
	want := map[string]Logs{
		"web":   {Console: &no, Format: "json", Dir: &webDir, MaxSize: 10 << 20, Keep: &zero, Compress: &yes, Lines: 500},
		"job":   {Format: "text", Dir: &none, MaxSize: 10 << 20, Keep: &three, Compress: &yes, Journal: &yes, Lines: 500},
		"quiet": global,
	}
	for name, w := range want {
		s, _ := c.Service(name)
		if !reflect.DeepEqual(s.Logs, w) {
			t.Errorf("%s: %+v, want %+v", name, s.Logs, w)
		}
	}
	// Nothing said: every field unset, for the caller's defaults.
	c = mustParse(t, "[services.web]\ncommand = [\"web\"]\n", nil)
	if s, _ := c.Service("web"); !reflect.DeepEqual(s.Logs, Logs{}) || !reflect.DeepEqual(c.Logs, Logs{}) {
		t.Errorf("no logs tables: %+v %+v", c.Logs, s.Logs)
	}
}

func TestLogsErrorsNameKeyAndLine(t *testing.T) {
	for _, tc := range []struct {
		doc, want string
	}{
		{"[logs]\nformat = \"yaml\"\n", `line 2: logs.format: "yaml" is not a console format: want "text" or "json"`},
		{"[logs]\nmax_size = \"1KiB\"\n", "line 2: logs.max_size: must be at least 4KiB, got 1KiB"},
		{"[logs]\nmax_size = \"lots\"\n", "line 2: logs.max_size: "},
		{"[logs]\nkeep = -1\n", "line 2: logs.keep: must be between 0 and 1000, got -1"},
		{"[logs]\nlines = 0\n", "line 2: logs.lines: must be between 1 and 1048576, got 0"},
		{"[logs]\nconsole = \"yes\"\n", "line 2: logs.console: wrong type: a TOML string where a boolean is wanted"},
		{"[logs]\nrotate = true\n", "line 2: logs.rotate: unknown key"},
		{"[services.web]\ncommand = [\"w\"]\n[services.web.logs]\nkeep = 5000\n", "line 4: services.web.logs.keep: must be between 0 and 1000, got 5000"},
		{"[services.web]\ncommand = [\"w\"]\nlogs = { lines = -3 }\n", "line 3: services.web.logs.lines: must be between 1 and 1048576, got -3"},
	} {
		_, err := Parse([]byte(tc.doc), "/etc/vigil", env(EnvProcessorCount, "1"))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.doc, err, tc.want)
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%q: not an *Error: %v", tc.doc, err)
		}
	}
}
