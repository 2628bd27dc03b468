//go:build !linux

package container

import "time"

// StopRun finds nothing where runs cannot be traced (not Linux).
func StopRun(runID, cgroup string, timeout time.Duration) []int { return nil }
