// Package pipeshare tells how much pipe memory the kernel lets this
// process's user have: past its share (/proc/sys/fs/pipe-user-pages-soft)
// every new pipe of an unprivileged user holds 2 pages, and none grows.
// Root is not always privileged here: the kernel asks for CAP_SYS_RESOURCE
// or CAP_SYS_ADMIN in the initial user namespace, which root in a default
// Docker container (both dropped) or in a user namespace does not have.
package pipeshare

import (
	"os"
	"strconv"
	"strings"
)

// Pages is the share of pipe memory, in pages, that the kernel holds this
// process's user to, 0 when it holds it to none (privileged, no limit, or
// not known).
func Pages() int {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	uidMap, _ := os.ReadFile("/proc/self/uid_map")
	if privileged(string(status), string(uidMap)) {
		return 0
	}
	b, err := os.ReadFile("/proc/sys/fs/pipe-user-pages-soft")
	if err != nil {
		return 0
	}
	pages, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pages < 0 {
		return 0
	}
	return pages
}

// The capabilities that exempt a user from its share (linux/capability.h).
const (
	capSysAdmin    = 21
	capSysResource = 24
)

// privileged says whether a process with that /proc/self/status and
// /proc/self/uid_map is exempt: it has CAP_SYS_RESOURCE or CAP_SYS_ADMIN
// in effect, and runs in the initial user namespace (whose uid_map maps
// every uid to itself), where the kernel looks for them.
func privileged(status, uidMap string) bool {
	if f := strings.Fields(uidMap); len(f) != 3 || f[0] != "0" || f[1] != "0" || f[2] != "4294967295" {
		return false
	}
	for _, line := range strings.Split(status, "\n") {
		v, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		return err == nil && caps&(1<<capSysAdmin|1<<capSysResource) != 0
	}
	return false
}
