package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionFrom(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, c := range []struct {
		name   string
		linked string
		bi     *debug.BuildInfo
		want   string
	}{
		{"go install @version", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "vigil v1.2.3 go1.26 linux/amd64"},
		{"pseudo-version from a checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201091709-89c1654abcde+dirty"}},
			"vigil v0.0.0-20261201091709-89c1654abcde+dirty go1.26 linux/amd64"},
		{"set at link time", "v9.9.9", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "vigil v9.9.9 go1.26 linux/amd64"},
		{"devel with its commit", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("89c1654abcdef0123456789", "true")},
			"vigil devel (89c1654abcde, modified) go1.26 linux/amd64"},
		{"devel, clean", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("89c1654", "false")},
			"vigil devel (89c1654) go1.26 linux/amd64"},
		{"no build info", "", nil, "vigil devel go1.26 linux/amd64"},
	} {
		if got := versionFrom(c.linked, c.bi, "go1.26", "linux/amd64"); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// vigil version, vigil --version and vigil -v print the same line.
func TestVersionForms(t *testing.T) {
	t.Parallel()
	var first string
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		stdout, stderr, code := opRun(t, nil, args...)
		if code != 0 || !strings.HasPrefix(stdout, "vigil ") || strings.Count(stdout, "\n") != 1 || stderr != "" {
			t.Errorf("vigil %s: exit %d: %q %q", args[0], code, stdout, stderr)
		}
		if first == "" {
			first = stdout
		} else if stdout != first {
			t.Errorf("vigil %s: %q, want %q as vigil version prints", args[0], stdout, first)
		}
	}
}
