//go:build linux

package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vigild/vigil/probe"
)

// recorder is owned by the goroutine that receives results.
type recorder struct {
	interval         time.Duration
	from, to         time.Time
	set              chan [2]time.Time
	inWindow, failed int
	firstErr         error
	durations        []time.Duration
	deviations       []time.Duration // |gap - interval| between a probe's attempts
	last             map[probe.Handle]time.Time
}

func newRecorder(interval time.Duration) *recorder {
	return &recorder{interval: interval, set: make(chan [2]time.Time, 1), last: map[probe.Handle]time.Time{}}
}

// window sets the measurement window, from another goroutine.
func (r *recorder) window(from, to time.Time) { r.set <- [2]time.Time{from, to} }

func (r *recorder) add(res probe.Result) {
	select {
	case w := <-r.set:
		r.from, r.to = w[0], w[1]
	default:
	}
	prev, seen := r.last[res.Handle]
	r.last[res.Handle] = res.Time
	if r.from.IsZero() || res.Time.Before(r.from) || !res.Time.Before(r.to) {
		return
	}
	r.inWindow++
	if !res.Passed {
		r.failed++
		if r.firstErr == nil {
			r.firstErr = res.Err
		}
	}
	r.durations = append(r.durations, res.Duration)
	if seen {
		d := res.Time.Sub(prev) - r.interval
		r.deviations = append(r.deviations, max(d, -d))
	}
}

// summary is read after the receiving goroutine has ended.
func (r *recorder) summary(window time.Duration, changesOnly bool) string {
	var b strings.Builder
	if changesOnly {
		fmt.Fprintf(&b, "results received in the window: %d (changes of status only)", r.inWindow)
		return b.String()
	}
	fmt.Fprintf(&b, "attempts in the window: %d (%.1f/s), %d failed", r.inWindow, float64(r.inWindow)/window.Seconds(), r.failed)
	if r.firstErr != nil {
		fmt.Fprintf(&b, " (first: %v)", r.firstErr)
	}
	slices.Sort(r.durations)
	slices.Sort(r.deviations)
	fmt.Fprintf(&b, "\nattempt duration: median %v, p99 %v, max %v",
		pct(r.durations, 50), pct(r.durations, 99), pct(r.durations, 100))
	fmt.Fprintf(&b, "\nperiod of each probe, |gap - interval|: median %v, p99 %v, max %v",
		pct(r.deviations, 50), pct(r.deviations, 99), pct(r.deviations, 100))
	return b.String()
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)].Round(time.Microsecond)
}
