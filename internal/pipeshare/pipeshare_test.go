package pipeshare

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestPrivileged(t *testing.T) {
	const initNS = "         0          0 4294967295\n"
	for _, tc := range []struct {
		name, status, uidMap string
		want                 bool
	}{
		{"root with every capability", "Name:\tx\nCapEff:\t000001ffffffffff\n", initNS, true},
		{"CAP_SYS_RESOURCE alone", "CapEff:\t0000000001000000\n", initNS, true},
		{"CAP_SYS_ADMIN alone", "CapEff:\t0000000000200000\n", initNS, true},
		{"root in a default Docker container", "CapEff:\t00000000a80425fb\n", initNS, false},
		{"a user", "CapEff:\t0000000000000000\n", initNS, false},
		{"root in a user namespace", "CapEff:\t000001ffffffffff\n", "         0       1000          1\n", false},
		{"no CapEff", "Name:\tx\n", initNS, false},
		{"no uid_map", "CapEff:\t000001ffffffffff\n", "", false},
	} {
		if got := privileged(tc.status, tc.uidMap); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Pages reads this process's own: 0 for root with its capabilities (as the
// tests run in CI), the soft limit for a user.
func TestPages(t *testing.T) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	uidMap, _ := os.ReadFile("/proc/self/uid_map")
	want := 0
	if !privileged(string(status), string(uidMap)) {
		b, err := os.ReadFile("/proc/sys/fs/pipe-user-pages-soft")
		if err != nil {
			t.Skip(err)
		}
		want, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if got := Pages(); got != want {
		t.Errorf("Pages() = %d, want %d", got, want)
	}
}

// Root without CAP_SYS_RESOURCE and CAP_SYS_ADMIN (as in a default Docker
// container) is held to the share: this test's binary, run again so.
func TestPagesRootWithoutCapabilities(t *testing.T) {
	if os.Getenv("PIPESHARE_CAPLESS") != "" {
		b, err := os.ReadFile("/proc/sys/fs/pipe-user-pages-soft")
		if err != nil {
			t.Skip(err)
		}
		want, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if got := Pages(); got != want {
			t.Fatalf("root without the capabilities: Pages() = %d, want %d", got, want)
		}
		return
	}
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv to drop capabilities with")
	}
	cmd := exec.Command(setpriv, "--bounding-set=-sys_resource,-sys_admin", "--inh-caps=-sys_resource,-sys_admin",
		os.Args[0], "-test.run=^TestPagesRootWithoutCapabilities$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PIPESHARE_CAPLESS=1")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("%v:\n%s", err, out)
	}
}
