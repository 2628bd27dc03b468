package statusview

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// StatusText returns a child's status text as the rows show it: the text,
// unless it names a state other than the child's own. A worker says
// "starting" before it is ready, and the controller keeps its last text
// after that; shown beside "ready", it would contradict it. Texts that name
// no state ("Preparing...", "serving 12 connections") are kept as they are.
func StatusText(state, text string) string {
	implied := impliedState(text)
	if implied != "" && implied != state {
		return ""
	}
	return text
}

// impliedState is the state a status text names ("Starting..." names
// "starting"), or "" when it names none.
func impliedState(text string) string {
	t := strings.ToLower(strings.TrimSpace(text))
	t = strings.TrimRight(t, ".!…")
	switch strings.TrimSpace(t) {
	case "starting", "started", "initializing", "initialising", "booting":
		return "starting"
	case "ready", "running", "healthy", "up":
		return "ready"
	case "unhealthy":
		return "unhealthy"
	case "stopping", "stopped", "shutting down":
		return "stopping"
	case "backing off":
		return "backing off"
	}
	return ""
}

// StateText is the worker's state as the table shows it at now: a
// backing-off worker's with the time left before its next start ("backing
// off 3.2s"; "backing off 0.0s" once it is due).
func (w *Worker) StateText(now time.Time) string {
	if w.State != "backing off" || w.NextRestart.IsZero() {
		return w.State
	}
	return w.State + " " + Countdown(w.NextRestart.Sub(now))
}

// Countdown formats a time left: "3.2s" under 10 seconds, "42s" under a
// minute, then "4m05s" and "2h07m"; a negative one is "0.0s".
func Countdown(d time.Duration) string {
	switch {
	case d < 0:
		return "0.0s"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		s := int(d.Seconds())
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		m := int(d.Minutes())
		return fmt.Sprintf("%dh%02dm", m/60, m%60)
	}
}

// SaysInline reports whether the worker said that its diagnostics answer
// inline (its registered "outputs" list "inline").
func (w *Worker) SaysInline() bool { return slices.Contains(w.Outputs, "inline") }
