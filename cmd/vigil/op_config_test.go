package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		name, toml, want, err string
	}{
		{"relative", "[supervisor]\nsocket = \"run/s.ipc\"\n", filepath.Join(dir, "run/s.ipc"), ""},
		{"absolute", "[supervisor]\nsocket = \"/srv/x/../s.ipc\"\n", "/srv/s.ipc", ""},
		{"default beside the file", "[services.web]\ncommand = [\"w\"]\n", filepath.Join(dir, "supervisor.ipc"), ""},
		// The rest of the file is vigil run's to judge.
		{"other keys not checked", "[services.web]\ncount = \"x\"\nnosuchkey = 1\n[supervisor]\nsocket = \"a.ipc\"\n", filepath.Join(dir, "a.ipc"), ""},
		{"not TOML", "[supervisor]\nsocket = \"a.ipc\"\nx = [\n", "", ":3: cannot read the supervisor's socket from it: toml: "},
		{"not a string", "[supervisor]\nsocket = 5\n", "", ": supervisor.socket is a int64, not a path (--socket to name the socket)"},
		{"empty", "[supervisor]\nsocket = \"\"\n", "", ": supervisor.socket is empty"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".toml")
		if err := os.WriteFile(path, []byte(c.toml), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := configSocket(path)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		case c.err != "" && (err == nil || !strings.HasPrefix(err.Error(), path+c.err)):
			t.Errorf("%s: %q, %v; want an error starting %q", c.name, got, err, path+c.err)
		}
	}
	if _, err := configSocket(filepath.Join(dir, "none.toml")); err == nil || err.Error() != "--config "+filepath.Join(dir, "none.toml")+": no such file" {
		t.Errorf("missing file: %v", err)
	}
}

// The operator commands find the socket, first: --socket,
// VIGIL_SUPERVISOR_SOCKET, supervisor.socket of -c FILE, of ./vigil.toml,
// else ./supervisor.ipc.
func TestOperatorSocketFromConfig(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "vcfg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Mkdir(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "run", "s.ipc")
	opSupervise(t, socket)
	config := filepath.Join(dir, "vigil.toml")
	if err := os.WriteFile(config, []byte("[supervisor]\nsocket = \"run/s.ipc\"\n\n[services.web]\ncommand = [\"w\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	none := filepath.Join(elsewhere, "none.ipc")
	unreachable := func(s string) string {
		return "vigil: no supervisor at " + s + ": is `vigil run` running here? (--socket to choose)\n"
	}
	for _, c := range []struct {
		what   string
		dir    string
		env    []string
		args   []string
		code   int
		stderr string
	}{
		{"./vigil.toml", dir, nil, nil, 0, ""},
		{"-c FILE", elsewhere, nil, []string{"-c", config}, 0, ""},
		{"--config FILE", elsewhere, nil, []string{"--config", config}, 0, ""},
		{"no vigil.toml here: ./supervisor.ipc", elsewhere, nil, nil, exitUnreachable, unreachable("supervisor.ipc")},
		{"the environment wins over ./vigil.toml", dir, []string{EnvSupervisorSocket + "=" + none}, nil, exitUnreachable, unreachable(none)},
		{"the environment wins over -c", elsewhere, []string{EnvSupervisorSocket + "=" + none}, []string{"-c", config}, exitUnreachable, unreachable(none)},
		{"--socket wins over all", dir, []string{EnvSupervisorSocket + "=" + socket}, []string{"-c", config, "--socket", none}, exitUnreachable, unreachable(none)},
		{"-c of a missing file", dir, nil, []string{"-c", "nope.toml"}, exitUsage, "vigil: --config nope.toml: no such file\n"},
	} {
		_, stderr, code := opRunIn(t, c.dir, c.env, append([]string{"status"}, c.args...)...)
		if code != c.code || stderr != c.stderr {
			t.Errorf("%s: exit %d: %q; want exit %d: %q", c.what, code, stderr, c.code, c.stderr)
		}
	}

	// A vigil.toml that is not TOML: the socket cannot be known; the error
	// names the file and line.
	if err := os.WriteFile(config, []byte("[supervisor]\nsocket = \"run/s.ipc\"\nx = [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := opRunIn(t, dir, nil, "status")
	if code != exitUsage || !strings.HasPrefix(stderr, "vigil: vigil.toml:3: cannot read the supervisor's socket from it: ") {
		t.Errorf("a broken vigil.toml: exit %d: %q", code, stderr)
	}
	if _, stderr, code := opRunIn(t, dir, nil, "status", "--socket", socket); code != 0 {
		t.Errorf("--socket beside a broken vigil.toml: exit %d: %s", code, stderr)
	}
}
