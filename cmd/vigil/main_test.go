package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// vigilBin is the vigil binary built once for the end-to-end tests, and
// binDir the directory that holds it and the example workers.
var vigilBin, binDir string

// helperEnv names the helper command a re-executed test binary plays.
const helperEnv = "VIGIL_CMD_TEST_HELPER"

// helpers are the commands the test binary plays when re-executed (as in
// os/exec's tests). Files of this package add theirs in init functions.
var helpers = map[string]func(args []string) int{}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintln(os.Stderr, "unknown helper", name)
			os.Exit(2)
		}
		os.Exit(h(os.Args[1:]))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "vigil-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = dir
	vigilBin = filepath.Join(dir, "vigil")
	build := exec.Command("go", "build", "-o", dir, ".", "../../examples/quickstart/goworker")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		// The example worker may not exist yet in a partial tree: build vigil alone.
		build = exec.Command("go", "build", "-o", vigilBin, ".")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building vigil:", err)
			return 1
		}
	}
	return m.Run()
}

// helperCmd returns a command that re-executes the test binary as a helper.
func helperCmd(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	// atexit_sleep_ms=0: a race-enabled helper otherwise lingers 1 s at exit.
	cmd.Env = append(os.Environ(), helperEnv+"="+name, "GORACE=atexit_sleep_ms=0")
	return cmd
}

// linkVigil puts the vigil binary in dir, where another uid may execute
// it: a hard link, not a copy, since a copy's write descriptor, inherited
// by a parallel test's fork, makes exec fail with "text file busy".
func linkVigil(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "vigil")
	if err := os.Link(vigilBin, bin); err != nil {
		t.Skipf("cannot link the vigil binary into %s: %v", dir, err)
	}
	return bin
}
