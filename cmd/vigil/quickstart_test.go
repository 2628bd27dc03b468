package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigild/vigil/internal/config"
)

// TestQuickstart runs the README's quick start on examples/quickstart as a
// user leaves it: its files are copied, unchanged, into the same layout
// (examples/quickstart beside bin/goworker, built by TestMain), so every
// relative path means what it means in the repository. The Python worker
// runs as the file says; when the file leaves it commented out and python3
// is there, it is turned on as the file invites. The test waits for every
// configured service's workers to be ready and the supervised ones
// registered.
func TestQuickstart(t *testing.T) {
	goworker := filepath.Join(binDir, "goworker")
	if _, err := os.Stat(goworker); err != nil {
		t.Fatalf("the example Go worker was not built: %v", err)
	}
	src, err := filepath.Abs("../../examples/quickstart")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "examples", "quickstart")
	copyQuickstart(t, src, dir)
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(goworker, filepath.Join(root, "bin", "goworker")); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "vigil.toml")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = exec.LookPath("python3")
	toml, note := quickstartPython(string(doc), err == nil)
	t.Log(note)
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, os.Getenv)
	if err != nil {
		t.Fatalf("the quick start's configuration: %v", err)
	}

	r := startRunFile(t, path, cfg.Supervisor.Socket)
	r.waitTree("the quick start's workers, ready, the supervised ones registered", func(tr tree) bool {
		registered := 0
		for _, s := range cfg.Services {
			if len(tr.pids(s.Name, "ready")) != s.Count {
				return false
			}
			if s.Supervised {
				registered += s.Count
			}
		}
		return len(tr.registered()) == registered
	})
	if !containsAll(r.out.String(), "web.1 | ", "shell.0 | shworker: pid") {
		t.Errorf("the workers' output is not prefixed:\n%s", r.out.String())
	}
}

// copyQuickstart copies the quick start's files (not the Go worker's
// source, not what a run leaves: its socket, its dumps).
func copyQuickstart(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	activePython    = regexp.MustCompile(`(?m)^[ \t]*\[services\.python\][ \t]*(#.*)?$`)
	commentedPython = regexp.MustCompile(`(?m)^#[ \t]*\[services\.python\][ \t]*$`)
)

// quickstartPython returns the quick start's configuration with its Python
// service as the test runs it, and what it did: left as the file has it
// when python3 can run it (on, or off); turned on when it is commented out
// as the file ships and python3 is there; turned off (commented out) when
// the file turns it on and python3 is missing, since it could only fail.
func quickstartPython(doc string, havePython bool) (string, string) {
	switch {
	case activePython.MatchString(doc) && havePython:
		return doc, "the file runs the Python worker"
	case activePython.MatchString(doc):
		return setBlock(doc, activePython, func(l string) string { return "# " + l }), "python3 is missing: the Python worker the file runs is commented out"
	case commentedPython.MatchString(doc) && havePython:
		return setBlock(doc, commentedPython, func(l string) string {
			return strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
		}), "the Python worker is turned on, as the file invites"
	case havePython:
		return doc, "the file has no Python worker"
	default:
		return doc, "python3 is missing: the Python worker stays off"
	}
}

// setBlock rewrites the table whose header header matches: the header
// line and the lines after it up to the first blank line or the next
// table (commented out or not).
func setBlock(doc string, header *regexp.Regexp, rewrite func(string) string) string {
	loc := header.FindStringIndex(doc)
	lines := strings.SplitAfter(doc[loc[0]:], "\n")
	for i, l := range lines {
		body := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(l), "#"))
		if i > 0 && (body == "" || strings.HasPrefix(body, "[")) {
			break
		}
		end := strings.TrimRight(l, "\n")
		lines[i] = rewrite(end) + l[len(end):]
	}
	return doc[:loc[0]] + strings.Join(lines, "")
}

// The quick start's file as it ships, and as a user leaves it with the
// Python worker uncommented: the test runs each as it should.
func TestQuickstartPython(t *testing.T) {
	shipped, err := os.ReadFile("../../examples/quickstart/vigil.toml")
	if err != nil {
		t.Fatal(err)
	}
	uncommented, _ := quickstartPython(string(shipped), true)
	services := func(doc string) string {
		t.Helper()
		cfg, err := config.Parse([]byte(doc), t.TempDir(), nil)
		if err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		var names []string
		for _, s := range cfg.Services {
			names = append(names, s.Name)
		}
		return strings.Join(names, ",")
	}
	for _, c := range []struct {
		name       string
		doc        string
		havePython bool
		want       string
	}{
		{"shipped, python3", string(shipped), true, "python,shell,web"},
		{"shipped, no python3", string(shipped), false, "shell,web"},
		{"uncommented by the user, python3", uncommented, true, "python,shell,web"},
		{"uncommented by the user, no python3", uncommented, false, "shell,web"},
	} {
		doc, note := quickstartPython(c.doc, c.havePython)
		if got := services(doc); got != c.want {
			t.Errorf("%s (%s): services %s, want %s", c.name, note, got, c.want)
		}
	}
	if !strings.Contains(uncommented, "\n[services.python]\ncommand = [\"python3\", \"pyworker.py\"]\n") {
		t.Errorf("uncommented:\n%s", uncommented)
	}
	// Only the Python block changes.
	if a, b := strings.Count(string(shipped), "\n# "), strings.Count(uncommented, "\n# "); a-b != 5 {
		t.Errorf("%d commented lines turned on, want the Python block's 5", a-b)
	}
}
