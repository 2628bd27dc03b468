package statusview

import (
	"strconv"
	"time"

	"github.com/vigild/vigil/rpc"
)

// Walking JSON that is already known to be valid (every line rpc.Parse
// accepted) with rpc's scanner: with 1,000 workers, encoding/json's decoding of the
// connections and children was most of `vigil status`'s own time. Anything
// unexpected (a wrong type) is skipped, as encoding/json would.

// eachElement calls f with each element of a JSON array; nothing when raw
// is not an array.
func eachElement(raw []byte, f func(elem []byte)) {
	for _, e := range rpc.Elements(raw) {
		f(e)
	}
}

// eachField calls f with each key (unquoted) and raw value of a JSON
// object; nothing when raw is not an object.
func eachField(raw []byte, f func(key string, val []byte)) {
	m, ok := rpc.Object(raw)
	if !ok {
		return
	}
	for k, v := range m.All() {
		f(k, v)
	}
}

// scanStringValue decodes a JSON string; false when raw is not one.
func scanStringValue(raw []byte) (string, bool) { return rpc.String(raw) }

// scanNumber decodes a JSON number; false when raw is not one.
func scanNumber(raw []byte) (float64, bool) {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// scanInt decodes a non-negative integer; unknown otherwise.
func scanInt(raw []byte, unknown int) int {
	f, ok := scanNumber(raw)
	if !ok || f < 0 || f != float64(int(f)) {
		return unknown
	}
	return int(f)
}

// connection is an entry of the final reply's "connections".
type connection struct {
	ConnectionID string
	ProcessID    []byte
	State        state
}

// decodeConnections decodes the final reply's "connections".
func decodeConnections(raw []byte) []connection {
	var conns []connection
	eachElement(raw, func(elem []byte) {
		var c connection
		eachField(elem, func(key string, val []byte) {
			switch key {
			case "connection_id":
				c.ConnectionID, _ = scanStringValue(val)
			case "process_id":
				c.ProcessID = val
			case "state":
				eachField(val, func(key string, val []byte) {
					switch key {
					case "role":
						c.State.Role, _ = scanStringValue(val)
					case "name":
						c.State.Name, _ = scanStringValue(val)
					case "instance":
						c.State.Instance = val
					case "process_id":
						c.State.ProcessID = val
					case "outputs":
						c.State.Outputs = []string{}
						eachElement(val, func(elem []byte) {
							if s, ok := scanStringValue(elem); ok {
								c.State.Outputs = append(c.State.Outputs, s)
							}
						})
					}
				})
			}
		})
		conns = append(conns, c)
	})
	return conns
}

// decodeChildren decodes the controller's "children".
func decodeChildren(raw []byte) []Child {
	var children []Child
	eachElement(raw, func(elem []byte) {
		ch := Child{Instance: -1}
		eachField(elem, func(key string, val []byte) {
			switch key {
			case "service":
				ch.Service, _ = scanStringValue(val)
			case "instance":
				ch.Instance = scanInt(val, -1)
			case "pid":
				ch.PID = scanInt(val, 0)
			case "state":
				ch.State, _ = scanStringValue(val)
			case "restarts":
				ch.Restarts = scanInt(val, 0)
			case "last_exit":
				if s, ok := scanStringValue(val); ok {
					ch.LastExit = &s
				}
			case "started_at":
				if t, ok := scanTime(val); ok {
					ch.StartedAt = &t
				}
			case "uptime":
				if f, ok := scanNumber(val); ok {
					ch.Uptime = &f
				}
			case "next_restart":
				if t, ok := scanTime(val); ok {
					ch.NextRestart = &t
				}
			case "status":
				ch.Status, _ = scanStringValue(val)
			case "last_error":
				ch.LastError, _ = scanStringValue(val)
			}
		})
		children = append(children, ch)
	})
	return children
}

// scanTime reads an RFC 3339 time string.
func scanTime(val []byte) (time.Time, bool) {
	s, ok := scanStringValue(val)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}
