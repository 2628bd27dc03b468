package main

import (
	"os"
	"path/filepath"
	"testing"
)

// vigil check lists every problem of the file, in its order, and suggests
// the key a misspelt one meant.
func TestCheckEveryProblem(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "vigil.toml")
	doc := "[supervisor]\nsokcet = \"s.ipc\"\n\n[services.web]\ncomand = [\"w\"]\ncount = 0\ngraceful_stop = 5\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := opRun(t, nil, "check", "-c", path)
	want := "vigil: 4 problems in " + path + ":\n" +
		path + ":2: supervisor.sokcet: unknown key sokcet: did you mean socket?\n" +
		path + ":5: services.web.comand: unknown key comand: did you mean command?\n" +
		path + ":6: services.web.count: must be between 1 and 1048576, got 0\n" +
		path + ":7: services.web.graceful_stop: wrong type: a TOML integer where a duration string such as \"30s\" is wanted\n"
	if code != exitUsage || stdout != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, stdout, stderr, want)
	}

	// One problem: one line.
	if err := os.WriteFile(path, []byte("[services.web]\ncommand = [\"w\"]\ncuont = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = opRun(t, nil, "check", "-c", path)
	if want := "vigil: " + path + ":3: services.web.cuont: unknown key cuont: did you mean count?\n"; code != exitUsage || stderr != want {
		t.Errorf("exit %d: %q, want %q", code, stderr, want)
	}
}
