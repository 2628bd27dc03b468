package config

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
)

// limits reads the supervisor's limits on its clients.
func (v *validator) limits(f *fileSupervisor) SupervisorLimits {
	key := func(k string) []string { return []string{"supervisor", k} }
	l := SupervisorLimits{
		MaxLineSize:    v.size(key("max_line_size"), f.MaxLineSize, DefaultMaxLineSize),
		MaxStateSize:   v.size(key("max_state_size"), f.MaxStateSize, DefaultMaxStateSize),
		MaxStateDepth:  DefaultMaxStateDepth,
		MaxInFlight:    DefaultMaxInFlight,
		LineTimeout:    v.duration(key("line_timeout"), f.LineTimeout, DefaultLineTimeout),
		MaxConnections: DefaultMaxConnections,
	}
	between := func(k string, n *int64, lo, hi int64, def int) int {
		if n == nil {
			return def
		}
		if *n < lo || *n > hi {
			v.fail(key(k), "must be between %d and %d, got %d", lo, hi, *n)
			return def
		}
		return int(*n)
	}
	l.MaxStateDepth = between("max_state_depth", f.MaxStateDepth, 1, 1000, l.MaxStateDepth)
	l.MaxInFlight = between("max_in_flight", f.MaxInFlight, 1, 1<<20, l.MaxInFlight)
	l.MaxConnections = between("max_connections", f.MaxConnections, 1, 1<<24, l.MaxConnections)
	if f.LineTimeout != nil {
		v.positive(key("line_timeout"), l.LineTimeout)
	}
	if f.MaxLineSize != nil && (l.MaxLineSize < 64*KiB || l.MaxLineSize > GiB) {
		v.fail(key("max_line_size"), "must be between 64KiB and 1GiB, got %s", l.MaxLineSize)
		l.MaxLineSize = DefaultMaxLineSize
	}
	if f.MaxStateSize != nil {
		switch {
		case l.MaxStateSize < KiB:
			v.fail(key("max_state_size"), "must be at least 1KiB (a worker's usual state is about 100 bytes), got %s", l.MaxStateSize)
		case l.MaxStateSize > l.MaxLineSize/2:
			v.fail(key("max_state_size"), "%s is over half of max_line_size (%s): a status reply could not carry one such state", l.MaxStateSize, l.MaxLineSize)
		}
	}
	return l
}

// principals resolves the entries of a role key: "NAME" or "group:NAME"
// is a group, "user:NAME" a user, NAME being a name or a decimal id.
func (v *validator) principals(key []string, entries []any) Principals {
	var p Principals
	for _, e := range entries {
		name, ok := e.(string)
		if !ok {
			v.fail(key, "%v (%T) is not a string: write \"group:NAME\" or \"user:NAME\" (a name or a decimal id)", e, e)
			continue
		}
		kind, who, found := strings.Cut(name, ":")
		if !found {
			kind, who = "group", name
		}
		switch kind {
		case "group":
			gid, err := lookupGroup(who)
			if err != nil {
				v.fail(key, "%q: %v (a user is written \"user:NAME\")", name, err)
				continue
			}
			p.GIDs = append(p.GIDs, gid)
		case "user":
			uid, err := lookupUser(who)
			if err != nil {
				v.fail(key, "%q: %v", name, err)
				continue
			}
			p.UIDs = append(p.UIDs, uid)
		default:
			v.fail(key, "%q: %q is neither \"user\" nor \"group\"", name, kind)
			continue
		}
		p.Names = append(p.Names, name)
	}
	return p
}

// lookupUser resolves a user name, or a decimal uid, to a uid.
func lookupUser(name string) (int, error) {
	if name == "" {
		return 0, errors.New("empty user name")
	}
	if n, err := strconv.Atoi(name); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%d is not a uid", n)
		}
		return n, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fmt.Errorf("user %q: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, fmt.Errorf("user %q has uid %q: %w", name, u.Uid, err)
	}
	return uid, nil
}
