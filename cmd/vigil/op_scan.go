package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// A minimal walker over JSON that is already known to be valid (every line
// rpc.Parse accepted): with 1,000 workers, encoding/json's decoding of the
// connections and children was most of `vigil status`'s own time. Anything
// unexpected (a wrong type) is skipped, as encoding/json would.

func scanSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// scanString returns the index after the string that starts at b[i] == '"'.
func scanString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// scanValue returns the index after the value that starts at b[i].
func scanValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return scanString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = scanString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
			i++
		}
		return i
	}
}

// eachElement calls f with each element of a JSON array; nothing when raw
// is not an array.
func eachElement(raw []byte, f func(elem []byte)) {
	i := scanSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return
	}
	i = scanSpace(raw, i+1)
	for i < len(raw) && raw[i] != ']' {
		end := scanValue(raw, i)
		f(raw[i:end])
		i = scanSpace(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = scanSpace(raw, i+1)
		}
	}
}

// eachField calls f with each key (unquoted) and raw value of a JSON
// object; nothing when raw is not an object.
func eachField(raw []byte, f func(key string, val []byte)) {
	i := scanSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return
	}
	i = scanSpace(raw, i+1)
	for i < len(raw) && raw[i] == '"' {
		kend := scanString(raw, i)
		key, _ := scanStringValue(raw[i:kend])
		i = scanSpace(raw, kend)
		i = scanSpace(raw, i+1) // the colon
		vend := scanValue(raw, i)
		f(key, raw[i:vend])
		i = scanSpace(raw, vend)
		if i < len(raw) && raw[i] == ',' {
			i = scanSpace(raw, i+1)
		}
	}
}

// scanStringValue decodes a JSON string; false when raw is not one.
func scanStringValue(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

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

// decodeConnections decodes the final reply's "connections".
func decodeConnections(raw []byte) []opConnection {
	var conns []opConnection
	eachElement(raw, func(elem []byte) {
		var c opConnection
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
					}
				})
			}
		})
		conns = append(conns, c)
	})
	return conns
}

// decodeChildren decodes the controller's "children".
func decodeChildren(raw []byte) []opChild {
	var children []opChild
	eachElement(raw, func(elem []byte) {
		ch := opChild{Instance: -1}
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
				if s, ok := scanStringValue(val); ok {
					ch.StartedAt = &s
				}
			case "uptime":
				if f, ok := scanNumber(val); ok {
					ch.Uptime = &f
				}
			case "next_restart":
				if s, ok := scanStringValue(val); ok {
					ch.NextRestart = &s
				}
			}
		})
		children = append(children, ch)
	})
	return children
}
