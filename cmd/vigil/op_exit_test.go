package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every command exits with the same code for the same situation: the
// README's table.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t) // a controller with web.0 and web.1
	opControllerReady(t, socket, "web=2")
	bare := opShortSocket(t) // a supervisor alone, two registrations of pid 4242
	opSupervise(t, bare)
	opRegistrants(t, bare, 2, 4242)
	nowhere := filepath.Join(t.TempDir(), "none.ipc")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(good, []byte("[services.web]\ncommand = [\"w\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("[services.web]\ncomand = [\"w\"]\ncount = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{EnvDumpDir + "=" + t.TempDir()}

	for _, c := range []struct {
		situation string
		code      int
		commands  [][]string
	}{
		{"success", exitOK, [][]string{
			{"version"},
			{"check", "-c", good},
			{"status", "--socket", socket},
			{"status", "--socket", socket, "web"},
			{"forward", "--socket", socket, "web.0", "echo"},
			{"dump", "goroutines", "--socket", socket, "web.1"},
			{"restart", "--socket", socket, "web.1"},
			{"probe", "ready", "--socket", socket},
		}},
		{"the operation failed", exitFailed, [][]string{
			{"forward", "--socket", socket, "web.0", "bogus"},
			{"forward", "--socket", socket, "--timeout", "200ms", "web.0", "sleep"},
			{"dump", "trace", "--socket", socket, "--duration", "10ms", "web.0"},
			{"restart", "--socket", bare, "svc.0"},
			{"probe", "ready", "--socket", bare},
			{"start", "--socket", socket, "web"}, // this controller does not serve start
			{"shutdown", "--socket", bare},       // no controller

		}},
		{"a usage error or an invalid configuration", exitUsage, [][]string{
			{"bogus"},
			{"status", "--socket", socket, "--output", "xml"},
			{"status", "--socket", socket, "--output", "raw", "web"},
			{"forward", "--socket", socket, "web.0"},
			{"dump", "nosuchkind", "--socket", socket, "web.0"},
			{"dump", "heap", "--socket", socket, "--output", "raw", "web.0"},
			{"restart", "--socket", socket, "--signal", "BOGUS"},
			{"scale", "--socket", socket, "web", "many"},
			{"scale", "--socket", socket, "all", "2"},
			{"stop", "--socket", socket, "supervisor"},
			{"start", "--socket", socket},
			{"status", "-c", filepath.Join(dir, "none.toml")},
			{"forward", "--socket", bare, "4242", "echo"}, // ambiguous
			{"dump", "heap", "--socket", bare, "4242"},    // ambiguous
			{"probe", "alive", "--socket", socket},
			{"check", "-c", bad},
			{"run", "-c", bad},
		}},
		{"the supervisor cannot be reached", exitUnreachable, [][]string{
			{"status", "--socket", nowhere},
			{"status", "--socket", nowhere, "--output", "json"},
			{"restart", "--socket", nowhere},
			{"restart", "--socket", nowhere, "web"},
			{"reload", "--socket", nowhere},
			{"start", "--socket", nowhere, "web"},
			{"stop", "--socket", nowhere, "web"},
			{"scale", "--socket", nowhere, "web", "2"},
			{"shutdown", "--socket", nowhere},
			{"forward", "--socket", nowhere, "web.0", "echo"},
			{"dump", "heap", "--socket", nowhere, "web.0"},
			{"probe", "ready", "--socket", nowhere},
			{"probe", "healthy", "--socket", nowhere},
		}},
		{"no worker or service by that name", exitNotFound, [][]string{
			{"status", "--socket", socket, "cache"},
			{"status", "--socket", socket, "--output", "json", "web", "cache"},
			{"restart", "--socket", socket, "web.7"},
			{"restart", "--socket", socket, "nosuch"},
			{"stop", "--socket", socket, "nosuch"},
			{"start", "--socket", socket, "web.9"},
			{"scale", "--socket", socket, "nosuch", "2"},
			{"forward", "--socket", socket, "web.9", "echo"},
			{"forward", "--socket", socket, "nosuch", "echo"},
			{"dump", "heap", "--socket", socket, "web.9"},
			{"dump", "goroutines", "--socket", bare, "nosuch.0"},
		}},
	} {
		for _, args := range c.commands {
			_, stderr, code := opRun(t, env, args...)
			if code != c.code {
				t.Errorf("%s: vigil %s: exit %d, want %d: %s", c.situation, strings.Join(args, " "), code, c.code, stderr)
			}
			if code != 0 && !strings.HasPrefix(stderr, "vigil: ") {
				t.Errorf("vigil %s: the error does not start with \"vigil: \": %q", strings.Join(args, " "), stderr)
			}
		}
	}
}
