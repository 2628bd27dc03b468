//go:build linux

package procmetrics

// DefaultFS returns the FS of the running system: /proc and /sys/fs/cgroup.
// It does not check that they are mounted; reads fail with clear errors if
// not.
func DefaultFS() FS {
	return FS{proc: DefaultProcRoot, cgroup: DefaultCgroupRoot}
}
