//go:build unix

package fdlimit

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestMaxIsTheHardLimit: under `ulimit -n 200` (soft and hard), this test
// binary, run again, reads 200; and the limit holds: it cannot open more.
func TestMaxIsTheHardLimit(t *testing.T) {
	if os.Getenv("FDLIMIT_CHILD") == "1" {
		n := Max()
		var files []*os.File
		defer func() {
			for _, f := range files {
				f.Close()
			}
		}()
		opened := 0
		for range 1000 {
			f, err := os.Open(os.DevNull)
			if err != nil {
				break
			}
			files = append(files, f)
			opened++
		}
		os.Stdout.WriteString(strconv.Itoa(n) + " " + strconv.Itoa(opened) + "\n")
		return
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh for ulimit")
	}
	cmd := exec.Command(sh, "-c", `ulimit -n 200 && exec "$0" -test.run '^TestMaxIsTheHardLimit$'`, os.Args[0])
	cmd.Env = append(os.Environ(), "FDLIMIT_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Fatalf("child said %q", out)
	}
	n, _ := strconv.Atoi(f[0])
	opened, _ := strconv.Atoi(f[1])
	if n != 200 {
		t.Errorf("Max() = %d under ulimit -n 200", n)
	}
	if opened >= 200 || opened < 150 {
		t.Errorf("opened %d files under a limit of 200", opened)
	}
	if Max() == 0 {
		t.Log("no descriptor limit in this process")
	}
}
