package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/vigild/vigil/internal/statusview"
)

// What start, stop and scale print once done, from the children before
// and after.

// pidList writes pids as "pid 12" or "pids 12, 13".
func pidList(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return plural(len(pids), "pid ", "pids ") + strings.Join(s, ", ")
}

func printStarted(out io.Writer, r *outcome) {
	if r.after == nil {
		writeLine(out, "started %s: %s", r.target.what, withoutID(r.reply))
		return
	}
	var started, running []string
	var lines []string
	for _, name := range sortedNames(r.after) {
		ch := r.after[name]
		if old, ok := r.before[name]; ok && old.PID != 0 && old.PID == ch.PID {
			running = append(running, name)
			continue
		}
		started = append(started, name)
		lines = append(lines, fmt.Sprintf("  %s: pid %d, %s", name, ch.PID, ch.State))
	}
	switch {
	case len(started) == 0:
		writeLine(out, "%s: already running (%d %s), nothing to start", r.target.what, len(running), plural(len(running), "worker", "workers"))
		return
	case len(running) == 0:
		writeLine(out, "started %s: %d %s ready", r.target.what, len(started), plural(len(started), "worker", "workers"))
	default:
		writeLine(out, "started %s: %d %s ready, %d already running", r.target.what, len(started), plural(len(started), "worker", "workers"), len(running))
	}
	for _, l := range lines {
		writeLine(out, "%s", l)
	}
}

func printStopped(out io.Writer, r *outcome) {
	var p struct {
		Stopped []int `json:"stopped"`
	}
	_ = r.reply.Decode(&p)
	again := "vigil start " + r.target.params["service"].(string)
	if i, ok := r.target.params["instance"].(int); ok {
		again += "." + strconv.Itoa(i)
	}
	if len(p.Stopped) == 0 {
		writeLine(out, "%s: nothing was running; it stays stopped until %s", r.target.what, again)
		return
	}
	slices.Sort(p.Stopped)
	writeLine(out, "stopped %s: %d %s (%s); %s stopped until %s", r.target.what, len(p.Stopped),
		plural(len(p.Stopped), "worker", "workers"), pidList(p.Stopped), plural(len(p.Stopped), "it stays", "they stay"), again)
}

func printScaled(out io.Writer, r *outcome) {
	svc := r.target.params["service"].(string)
	from := len(r.before)
	if r.after == nil {
		writeLine(out, "scaled %s from %d to %d %s", svc, from, r.count, plural(r.count, "instance", "instances"))
		return
	}
	var started, stopped []string
	for _, name := range sortedNames(r.after) {
		if _, ok := r.before[name]; !ok {
			started = append(started, childLabel(name, r.after[name]))
		}
	}
	for _, name := range sortedNames(r.before) {
		if _, ok := r.after[name]; !ok {
			stopped = append(stopped, childLabel(name, r.before[name]))
		}
	}
	if len(started) == 0 && len(stopped) == 0 {
		writeLine(out, "%s: already %d %s, nothing to do", svc, r.count, plural(r.count, "instance", "instances"))
		return
	}
	what := []string{}
	if len(started) > 0 {
		what = append(what, "started "+strings.Join(started, ", "))
	}
	if len(stopped) > 0 {
		what = append(what, "stopped "+strings.Join(stopped, ", "))
	}
	writeLine(out, "scaled %s from %d to %d %s: %s", svc, from, r.count, plural(r.count, "instance", "instances"), strings.Join(what, "; "))
}

// childLabel names an instance with its pid ("web.2 (pid 42)"), or its
// state when it has no process ("web.2 (stopped)").
func childLabel(name string, ch statusview.Child) string {
	if ch.PID == 0 {
		return fmt.Sprintf("%s (%s)", name, ch.State)
	}
	return fmt.Sprintf("%s (pid %d)", name, ch.PID)
}
