package statusview

import (
	"strconv"
	"time"

	"github.com/vigild/vigil/rpc"
)

// Walking JSON that is already known to be valid (every line rpc.Parse
// accepted) with rpc's allocation-free iterators: with 1,000 workers,
// decoding the replies was most of `vigil status`'s own time. Anything
// unexpected (a wrong type) is skipped, as encoding/json would.

// scanNumber decodes a JSON number; false when raw is not one.
func scanNumber(raw []byte) (float64, bool) {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, false
	}
	if n, ok := smallInt(raw); ok {
		return float64(n), true
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// smallInt decodes a non-negative integer of at most 15 digits without
// strconv; false for anything else.
func smallInt(raw []byte) (int, bool) {
	if len(raw) == 0 || len(raw) > 15 {
		return 0, false
	}
	n := 0
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// scanInt decodes a non-negative integer; unknown otherwise.
func scanInt(raw []byte, unknown int) int {
	if n, ok := smallInt(raw); ok {
		return n
	}
	f, ok := scanNumber(raw)
	if !ok || f < 0 || f != float64(int(f)) {
		return unknown
	}
	return int(f)
}

// interned holds the short strings that repeat from row to row (service
// names, states), so that a thousand rows share a few.
type interned map[string]string

func (s interned) get(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if v, ok := s[string(raw)]; ok { // no allocation for the lookup
		return v, true
	}
	v, ok := rpc.String(raw)
	if ok && len(raw) <= 64 {
		s[string(raw)] = v
	}
	return v, ok
}

// connection is an entry of the final reply's "connections".
type connection struct {
	ConnectionID string
	ProcessID    []byte
	State        state
	Unverified   bool // the state's "verified" is false
}

// decodeConnections decodes the final reply's "connections".
func decodeConnections(raw []byte, names interned) []connection {
	conns := make([]connection, 0, len(raw)/160+1) // about 200 bytes each
	for elem := range rpc.Values(raw) {
		var c connection
		for key, val := range rpc.Fields(elem) {
			switch string(key) {
			case "connection_id":
				c.ConnectionID, _ = rpc.String(val)
			case "process_id":
				c.ProcessID = val
			case "state":
				for key, val := range rpc.Fields(val) {
					switch string(key) {
					case "role":
						c.State.Role, _ = names.get(val)
					case "name":
						c.State.Name, _ = names.get(val)
					case "instance":
						c.State.Instance = val
					case "process_id":
						c.State.ProcessID = val
					case "verified":
						c.Unverified = string(val) == "false"
					case "outputs":
						c.State.Outputs = []string{}
						for elem := range rpc.Values(val) {
							if s, ok := names.get(elem); ok {
								c.State.Outputs = append(c.State.Outputs, s)
							}
						}
					}
				}
			}
		}
		conns = append(conns, c)
	}
	return conns
}

// decodeChildren decodes the controller's "children".
func decodeChildren(raw []byte, names interned) []Child {
	children := make([]Child, 0, len(raw)/200+1) // about 250 bytes each
	// The pointer fields of the children point into these, one allocation
	// each for all.
	floats := make([]float64, 0, cap(children))
	times := make([]time.Time, 0, 2*cap(children))
	for elem := range rpc.Values(raw) {
		ch := Child{Instance: -1}
		for key, val := range rpc.Fields(elem) {
			switch string(key) {
			case "service":
				ch.Service, _ = names.get(val)
			case "instance":
				ch.Instance = scanInt(val, -1)
			case "pid":
				ch.PID = scanInt(val, 0)
			case "state":
				ch.State, _ = names.get(val)
			case "restarts":
				ch.Restarts = scanInt(val, 0)
			case "last_exit":
				if s, ok := names.get(val); ok {
					ch.LastExit = &s
				}
			case "started_at":
				if t, ok := scanTime(val); ok {
					times = append(times, t)
					ch.StartedAt = &times[len(times)-1]
				}
			case "uptime":
				if f, ok := scanNumber(val); ok {
					floats = append(floats, f)
					ch.Uptime = &floats[len(floats)-1]
				}
			case "next_restart":
				if t, ok := scanTime(val); ok {
					times = append(times, t)
					ch.NextRestart = &times[len(times)-1]
				}
			case "status":
				ch.Status, _ = names.get(val)
			case "last_error":
				ch.LastError, _ = rpc.String(val)
			case "dropped_lines":
				if n := scanInt(val, 0); n > 0 {
					ch.DroppedLines = uint64(n)
				}
			}
		}
		children = append(children, ch)
	}
	return children
}

// scanTime reads an RFC 3339 time string.
func scanTime(val []byte) (time.Time, bool) {
	s, ok := rpc.String(val)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}
