package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version or "devel" is shown.
var version = ""

// versionString is what `vigil version`, `vigil --version` and `vigil -v`
// print.
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return versionFrom(version, bi, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
}

// versionFrom builds the version line: "vigil VERSION GO OS/ARCH". VERSION
// is the one set at link time if any; else the module's version, which
// `go install github.com/vigild/vigil/cmd/vigil@v1.2.3` records (and `go
// build` in a checkout, from its tag or commit); else "devel", with the
// commit and "modified" when the build recorded them.
func versionFrom(linked string, bi *debug.BuildInfo, goVersion, platform string) string {
	v := linked
	if v == "" && bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "devel"
		if bi != nil {
			var rev, modified string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value
				}
			}
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if rev != "" && modified == "true" {
				v += " (" + rev + ", modified)"
			} else if rev != "" {
				v += " (" + rev + ")"
			}
		}
	}
	return fmt.Sprintf("vigil %s %s %s", v, goVersion, platform)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print vigil's version (also vigil --version, vigil -v)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			usageDone(cmd)
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return err
		},
	}
}
