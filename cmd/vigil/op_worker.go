package main

import (
	"fmt"
	"strconv"
	"strings"
)

// maxCandidates bounds the candidates an unknown or ambiguous WORKER lists.
const maxCandidates = 20

// workerHelp describes WORKER in the commands' help.
const workerHelp = `WORKER is a connection id or a unique prefix of one, a pid, or
SERVICE.INSTANCE (instances count from 0, as in vigil run's output).`

// parseServiceInstance splits "web.2" into ("web", 2).
func parseServiceInstance(arg string) (string, int, bool) {
	i := strings.LastIndexByte(arg, '.')
	if i <= 0 || i == len(arg)-1 {
		return "", 0, false
	}
	n, err := strconv.Atoi(arg[i+1:])
	if err != nil || n < 0 || arg[i+1] == '+' || arg[i+1] == '-' {
		return "", 0, false
	}
	return arg[:i], n, true
}

// resolveWorker finds the one worker that arg names: SERVICE.INSTANCE, a
// pid, or a connection id or a unique prefix of one. Unknown and ambiguous
// names are usage errors that list the candidates.
func resolveWorker(v *opView, arg string) (*opWorker, error) {
	if arg == "" {
		return nil, usageErr("WORKER must not be empty: %s", candidates(v.Workers, v.controllerList()))
	}
	var matches []*opWorker
	if svc, n, ok := parseServiceInstance(arg); ok {
		for _, w := range v.Workers {
			if w.Service == svc && w.Instance == n {
				matches = append(matches, w)
			}
		}
	}
	if len(matches) == 0 {
		if pid, err := strconv.Atoi(arg); err == nil && pid > 0 {
			seen := make(map[*opWorker]bool)
			for _, w := range append(v.Workers, v.Connections...) {
				if w.PID == pid && !seen[w] && !duplicateRow(matches, w) {
					seen[w] = true
					matches = append(matches, w)
				}
			}
		}
	}
	if len(matches) == 0 {
		prefix := strings.ToLower(arg)
		for _, w := range v.Workers {
			if w.ConnID != "" && strings.HasPrefix(strings.ToLower(w.ConnID), prefix) {
				matches = append(matches, w)
			}
		}
		if c := v.Controller; c != nil && strings.HasPrefix(strings.ToLower(c.ConnID), prefix) {
			matches = append(matches, c)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return nil, usageErr("no worker matches %q: %s", arg, candidates(v.Workers, v.controllerList()))
	default:
		return nil, usageErr("%q is ambiguous: it matches %s", arg, listWorkers(matches))
	}
}

// duplicateRow reports whether a connection row is already represented in
// matches by the child row that claimed it.
func duplicateRow(matches []*opWorker, w *opWorker) bool {
	for _, m := range matches {
		if w.ConnID != "" && m.ConnID == w.ConnID {
			return true
		}
	}
	return false
}

func (v *opView) controllerList() []*opWorker {
	if v.Controller == nil {
		return nil
	}
	return []*opWorker{v.Controller}
}

// candidates lists the workers one may name, or says there are none.
func candidates(lists ...[]*opWorker) string {
	var all []*opWorker
	for _, l := range lists {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return "no worker is registered with the supervisor"
	}
	return "the workers are " + listWorkers(all)
}

func listWorkers(ws []*opWorker) string {
	var b strings.Builder
	for i, w := range ws {
		if i == maxCandidates {
			fmt.Fprintf(&b, ", and %d more (see vigil status)", len(ws)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(w.Describe())
	}
	return b.String()
}
