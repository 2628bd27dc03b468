//go:build !linux

package notify

// monotonicUsec is unavailable off Linux: MONOTONIC_USEC is left out.
func monotonicUsec() (uint64, bool) { return 0, false }
