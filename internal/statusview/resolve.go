package statusview

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxCandidates bounds the candidates that the error for an unknown or
// ambiguous WORKER lists.
const MaxCandidates = 20

// The errors of Resolve, for errors.Is. Their messages list the candidates.
var (
	// ErrEmptyName is returned for an empty WORKER.
	ErrEmptyName = errors.New("WORKER must not be empty")
	// ErrNoMatch is returned when no worker matches WORKER.
	ErrNoMatch = errors.New("no worker matches")
	// ErrAmbiguous is returned when WORKER matches more than one worker.
	ErrAmbiguous = errors.New("ambiguous WORKER")
)

// resolveError is a Resolve error: a message for a person, and the
// sentinel it is.
type resolveError struct {
	msg  string
	kind error
}

func (e *resolveError) Error() string { return e.msg }
func (e *resolveError) Unwrap() error { return e.kind }

// ParseName splits SERVICE.INSTANCE ("web.2") into ("web", 2); false when
// name is not of that form (INSTANCE a non-negative decimal, without sign).
func ParseName(name string) (service string, instance int, ok bool) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return "", 0, false
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n < 0 || name[i+1] == '+' || name[i+1] == '-' {
		return "", 0, false
	}
	return name[:i], n, true
}

// Resolve finds the one worker that arg names, trying in turn:
// SERVICE.INSTANCE, a registered name (a worker that registered a name and
// no instance is named by it; a service's name alone matches all its
// workers, so names one only if it has one), a pid (the controller's own
// registration included), and a connection id or a unique prefix of one
// (case-insensitive). An empty,
// unknown or ambiguous arg is an error (ErrEmptyName, ErrNoMatch,
// ErrAmbiguous) whose message lists the candidates, at most MaxCandidates.
func (v *View) Resolve(arg string) (*Worker, error) {
	if arg == "" {
		return nil, &resolveError{fmt.Sprintf("%v: %s", ErrEmptyName, candidates(v.Workers, v.controllerList())), ErrEmptyName}
	}
	var matches []*Worker
	if svc, n, ok := ParseName(arg); ok {
		for _, w := range v.Workers {
			if w.Service == svc && w.Instance == n {
				matches = append(matches, w)
			}
		}
	}
	if len(matches) == 0 {
		// A registered name: the original's workers register only
		// {process_id, name}, and their rows are named by it.
		for _, w := range v.Workers {
			if w.Service != "" && w.Service == arg {
				matches = append(matches, w)
			}
		}
	}
	if len(matches) == 0 {
		if pid, err := strconv.Atoi(arg); err == nil && pid > 0 {
			seen := make(map[*Worker]bool)
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
		return nil, &resolveError{fmt.Sprintf("%v %q: %s", ErrNoMatch, arg, candidates(v.Workers, v.controllerList())), ErrNoMatch}
	default:
		return nil, &resolveError{fmt.Sprintf("%q is ambiguous: it matches %s", arg, listWorkers(matches)), ErrAmbiguous}
	}
}

// duplicateRow reports whether a connection row is already represented in
// matches by the child row that claimed it.
func duplicateRow(matches []*Worker, w *Worker) bool {
	for _, m := range matches {
		if w.ConnID != "" && m.ConnID == w.ConnID {
			return true
		}
	}
	return false
}

func (v *View) controllerList() []*Worker {
	if v.Controller == nil {
		return nil
	}
	return []*Worker{v.Controller}
}

// candidates lists the workers one may name, or says there are none.
func candidates(lists ...[]*Worker) string {
	var all []*Worker
	for _, l := range lists {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return "no worker is registered with the supervisor"
	}
	return "the workers are " + listWorkers(all)
}

func listWorkers(ws []*Worker) string {
	var b strings.Builder
	for i, w := range ws {
		if i == MaxCandidates {
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
