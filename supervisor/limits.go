package supervisor

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"github.com/vigild/vigil/rpc"
)

// Defaults of [Limits].
const (
	DefaultMaxStateSize   = 64 << 10
	DefaultMaxStateDepth  = 32
	DefaultMaxInFlight    = 16
	DefaultLineTimeout    = rpc.DefaultLineTimeout
	DefaultMaxConnections = 10000
)

// Limits bound what one client can make the server hold. A zero field
// takes its default; each is a key of vigil.toml's [supervisor] table,
// named in the error a client gets when it hits it.
type Limits struct {
	// MaxLineSize is the longest line accepted; a longer one closes the
	// connection (default rpc.DefaultMaxLineSize, 8 MiB; max_line_size).
	MaxLineSize int
	// MaxStateSize is the largest state a registration may carry, as JSON,
	// merged with the connection's earlier registrations (default 64 KiB;
	// max_state_size). A larger one gets a failed reply.
	MaxStateSize int
	// MaxStateDepth is the deepest nesting of objects and arrays in a
	// registration's state, the state itself counting 1 (default 32;
	// max_state_depth). A deeper one gets a failed reply.
	MaxStateDepth int
	// MaxInFlight is the most calls of one connection unanswered at once
	// (default 16; max_in_flight): further lines wait unread, so the
	// kernel's socket buffer pushes back on the client. A client that does
	// not read its replies holds this many in the supervisor: the default
	// is low for that reason (an operator's tools send one call at a time).
	MaxInFlight int
	// LineTimeout bounds the time from a line's first byte to its newline;
	// a line not completed in time closes the connection (default 10s;
	// line_timeout). Idle connections have no deadline.
	LineTimeout time.Duration
	// MaxConnections is the most connections served at once (default
	// 10,000; max_connections), and never more than the process's
	// descriptor limit (RLIMIT_NOFILE) less 64 allows, which is said once
	// when the server starts. Further ones are closed as soon as they are
	// accepted, with one log line until the count falls again.
	MaxConnections int
}

// withDefaults fills in the zero fields.
func (l Limits) withDefaults() Limits {
	l.MaxLineSize = cmp.Or(l.MaxLineSize, rpc.DefaultMaxLineSize)
	l.MaxStateSize = cmp.Or(l.MaxStateSize, DefaultMaxStateSize)
	l.MaxStateDepth = cmp.Or(l.MaxStateDepth, DefaultMaxStateDepth)
	l.MaxInFlight = cmp.Or(l.MaxInFlight, DefaultMaxInFlight)
	l.LineTimeout = cmp.Or(l.LineTimeout, DefaultLineTimeout)
	l.MaxConnections = cmp.Or(l.MaxConnections, DefaultMaxConnections)
	return l
}

// descriptorReserve is how many descriptors the server keeps for other
// than its connections (see ServedConnections).
const descriptorReserve = 64

// ServedConnections is how many connections a server with max_connections
// maxConnections serves at once under a descriptor limit of fds (0: none
// known): never more than fds less the descriptors it keeps for the rest
// (its listener, its monitors' reads of /proc, the metrics endpoint, log
// files). Past that, accepting would fail and the connections wait in the
// listen queue, operators' calls among them, while the monitors could
// open nothing.
func ServedConnections(maxConnections, fds int) int {
	if fds <= 0 || maxConnections <= fds-descriptorReserve {
		return maxConnections
	}
	return max(fds-descriptorReserve, 1)
}

// capToDescriptors lowers MaxConnections to ServedConnections under fds,
// and reports whether it did.
func (l *Limits) capToDescriptors(fds int) bool {
	served := ServedConnections(l.MaxConnections, fds)
	capped := served < l.MaxConnections
	l.MaxConnections = served
	return capped
}

// jsonDepth returns the deepest nesting of objects and arrays in raw, which
// must be valid JSON (a scalar has depth 0).
func jsonDepth(raw []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			for i++; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
		}
	}
	return deepest
}

// briefAbove is the size of a status entry above which the entry also gets
// a brief form, which a status reply sends in its place when the reply
// would not fit in a line otherwise. Brief entries are smaller than this,
// so that the status of DefaultMaxConnections registrations always fits.
const briefAbove = 512

// statusRoom is the room a status reply's connections have: the line limit
// of the operator's side (vigil's own client keeps the default), less a
// margin for the reply's other fields.
func statusRoom(maxLine int) int {
	return min(maxLine, rpc.DefaultMaxLineSize) - 64<<10
}

// appendEntries appends the connections' status entries as a JSON array,
// each in full unless the whole would not fit in room bytes: then the
// largest are sent brief (their state cut to connection_id, process_id,
// name, instance, role, verified, with "elided": true and the size of the
// state left out), as many as needed.
func appendEntries(buf []byte, conns []*Connection, room int) []byte {
	total := 0
	for _, c := range conns {
		total += len(c.entry) + 1
	}
	var brief map[*Connection]bool
	if total > room {
		bySize := slices.Clone(conns)
		slices.SortFunc(bySize, func(a, b *Connection) int { return cmp.Compare(len(b.entry), len(a.entry)) })
		brief = make(map[*Connection]bool)
		for _, c := range bySize {
			if total <= room || c.brief == nil {
				break
			}
			brief[c] = true
			total -= len(c.entry) - len(c.brief)
		}
	}
	buf = slices.Grow(buf, total+2)
	buf = append(buf, '[')
	for i, c := range conns {
		if i > 0 {
			buf = append(buf, ',')
		}
		if brief[c] {
			buf = append(buf, c.brief...)
		} else {
			buf = append(buf, c.entry...)
		}
	}
	return append(buf, ']')
}

// briefState is the part of a state a brief status entry keeps: short
// strings and numbers only, so that its size is bounded.
func briefState(state map[string]any, size int) map[string]any {
	b := map[string]any{"elided": true, "state_size": size}
	for _, k := range []string{"connection_id", "process_id", "instance", "verified"} {
		switch v := state[k].(type) {
		case string:
			if len(v) <= 64 {
				b[k] = v
			}
		case float64, json.Number, int, bool:
			b[k] = v
		}
	}
	for _, k := range []string{"name", "role"} {
		if v, ok := state[k].(string); ok && len(v) <= 64 {
			b[k] = v
		}
	}
	return b
}
