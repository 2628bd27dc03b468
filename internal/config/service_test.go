package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestServiceKeys(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.env"), []byte("# comment\nexport A=1\nB='two words'\nC=\"x\\ny\" \nD=bare # comment\nE=from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := `
[services.web]
command = ["bin/web", "--port", "${port}"]
count = 2
port = 8080
readiness = { http = "http://127.0.0.1:${port}/healthz", interval = "500ms", failure_threshold = 2 }
health = { tcp = "127.0.0.1:${port}", interval = "5s" }
required = true
autostart = false
own_cgroup = false
user = "65534"
group = "0"
env_file = "web.env"
env = { E = "from-env" }
stop_signal = "TERM"
start_limit = { burst = 5, interval = "60s" }
`
	c, err := Parse([]byte(doc), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Services[0]
	want := Probe{HTTP: "http://127.0.0.1:${port}/healthz", Interval: Duration(500 * time.Millisecond), FailureThreshold: 2}
	if s.Readiness != ReadinessProbe || s.ReadinessProbe == nil || s.ReadinessProbe.HTTP != want.HTTP || s.ReadinessProbe.Interval != want.Interval || s.ReadinessProbe.FailureThreshold != 2 {
		t.Errorf("readiness = %q %+v", s.Readiness, s.ReadinessProbe)
	}
	if s.HealthProbe == nil || s.HealthProbe.TCP != "127.0.0.1:${port}" || s.HealthProbe.Interval != Duration(5*time.Second) {
		t.Errorf("health = %+v", s.HealthProbe)
	}
	if !s.Required || s.Autostart || s.OwnCgroup || s.UID != 65534 || s.GID != 0 || s.StopSignal != "SIGTERM" ||
		s.StartLimitBurst != 5 || s.StartLimitInterval != Duration(time.Minute) || s.Port != 8080 || s.Reload != ReloadRolling {
		t.Errorf("service = %+v", s)
	}
	wantEnv := map[string]string{"A": "1", "B": "two words", "C": "x\ny", "D": "bare", "E": "from-env"}
	for k, v := range wantEnv {
		if s.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, s.Env[k], v)
		}
	}
	// And it prints back to the same.
	var b strings.Builder
	if err := c.Encode(&b); err != nil {
		t.Fatal(err)
	}
	c2, err := Parse([]byte(b.String()), dir, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if s2 := c2.Services[0]; s2.ReadinessProbe == nil || !reflect.DeepEqual(s2.ReadinessProbe, s.ReadinessProbe) || s2.Port != 8080 || s2.StopSignal != "SIGTERM" || s2.Autostart || s2.OwnCgroup {
		t.Errorf("round trip: %+v\n%s", s2, b.String())
	}
}

func TestServiceKeyErrors(t *testing.T) {
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "bad.env"), []byte("A=1\nthis is not\n"), 0o644)
	for _, tc := range []struct{ doc, want string }{
		{"stop_signal = \"FOO\"", `line 3: services.web.stop_signal: "FOO" is not a stop signal`},
		{"reload = \"sideways\"", `line 3: services.web.reload: "sideways" is not a reload mode`},
		{"port = 8080\nreload = \"blue-green\"", `line 4: services.web.reload: a service with a port cannot be replaced blue/green`},
		{"port = 70000", `line 3: services.web.port: port 70000 with 2 instances goes beyond 1-65535`},
		{"readiness = { http = \"http://x\", tcp = \"x:1\" }", `line 3: services.web.readiness: a probe is exactly one of http, tcp and exec (2 given)`},
		{"readiness = { htp = \"http://x\" }", `unknown key htp: did you mean http?`},
		{"readiness = \"soon\"", `line 3: services.web.readiness: "soon" is not a readiness`},
		{"health = { tcp = \"nocolon\" }", `line 3: services.web.health.tcp: "nocolon" is not an address HOST:PORT`},
		{"env_file = \"bad.env\"", `bad.env:2: not KEY=VALUE: "this is not"`},
		{"env_file = \"none.env\"", `line 3: services.web.env_file: env_file: open`},
		{"start_limit = { burst = 0, interval = \"1s\" }", `services.web.start_limit.burst: start_limit needs a burst of 1 or more`},
		{"user = \"no-such-user-vigil\"", `line 3: services.web.user: user "no-such-user-vigil"`},
		{"own_cgroup = \"no\"", `line 3: services.web.own_cgroup: wrong type`},
	} {
		doc := "[services.web]\ncommand = [\"x\"]\n" + tc.doc + "\n"
		_, err := Parse([]byte(doc), dir, func(k string) string {
			if k == EnvProcessorCount {
				return "2"
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\ngot  %v\nwant %s", tc.doc, err, tc.want)
		}
	}
}
