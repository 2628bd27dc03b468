//go:build !linux

package procmetrics

import (
	"errors"
	"runtime"
)

// DefaultFS returns an FS whose every method fails with an error wrapping
// errors.ErrUnsupported: this system has no Linux /proc. FS values made with
// NewFS over fixture trees still work.
func DefaultFS() FS {
	return FS{
		proc:        DefaultProcRoot,
		cgroup:      DefaultCgroupRoot,
		unsupported: errors.Join(errors.ErrUnsupported, errors.New("procmetrics: no /proc on "+runtime.GOOS)),
	}
}
