package container

import "time"

// backoff is an instance's restart back-off state.
type backoff struct {
	failures int // consecutive short-lived runs
}

// next records an exit of a process that lived for lifetime and returns
// how long to wait before restarting it. jitter returns a value in [0, 1).
//
// The first failure restarts at once (0). A process that lived at least
// stableAfter resets the count first, so it too restarts at once. Each further
// failure waits restartDelay doubled per failure (restartDelay, 2×, 4×, …),
// capped at restartDelayMax, minus up to 20% jitter.
func (b *backoff) next(lifetime time.Duration, s Spec, jitter func() float64) time.Duration {
	if lifetime >= s.StableAfter {
		b.failures = 0
	}
	b.failures++
	if b.failures == 1 {
		return 0
	}
	d := s.RestartDelay
	for i := 2; i < b.failures && d < s.RestartDelayMax; i++ {
		d *= 2
	}
	d = min(d, s.RestartDelayMax)
	return d - time.Duration(float64(d)*0.2*jitter())
}
