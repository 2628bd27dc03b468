package metrics

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/control"
	"github.com/vigild/vigil/rpc"
)

// The controller's children reply of 1,000 workers is some 400 KB of JSON:
// encoding/json's decoding of it took longer than building the families.
// It is walked with rpc's scanner instead (the reply was validated when it
// was read), and only the fields the series need are decoded. A field of
// the wrong type is left zero, as encoding/json would leave it.

// errNoChildren is a reply without "children".
var errNoChildren = errors.New("the reply has no \"children\"")

// decodeChildren decodes the controller's "children" reply.
func decodeChildren(m *rpc.Message) (*control.Children, error) {
	raw, ok := m.Get("children")
	if !ok {
		return nil, errNoChildren
	}
	elems := rpc.Elements(raw)
	out := &control.Children{Children: make([]control.Child, 0, len(elems)), Statistics: map[string]container.Statistics{}}
	for _, e := range elems {
		obj, ok := rpc.Object(e)
		if !ok {
			continue
		}
		ch := control.Child{Instance: -1}
		for k, v := range obj.All() {
			switch k {
			case "service":
				ch.Service, _ = rpc.String(v)
			case "instance":
				ch.Instance = int(scanInt(v, -1))
			case "pid":
				ch.PID = int(scanInt(v, 0))
			case "state":
				ch.State, _ = rpc.String(v)
			case "restarts":
				ch.Restarts = int(scanInt(v, 0))
			case "started_at":
				if t, ok := scanTime(v); ok {
					ch.StartedAt = &t
				}
			case "next_restart":
				if t, ok := scanTime(v); ok {
					ch.NextRestart = &t
				}
			}
		}
		out.Children = append(out.Children, ch)
	}
	if stats, ok := m.GetObject("statistics"); ok {
		for name, v := range stats.All() {
			if obj, ok := rpc.Object(v); ok {
				out.Statistics[name] = decodeStatistics(name, obj)
			}
		}
	}
	return out, nil
}

// decodeStatistics decodes one service's statistics.
func decodeStatistics(name string, obj *rpc.Message) container.Statistics {
	st := container.Statistics{Service: name}
	for k, v := range obj.All() {
		switch k {
		case "spawns":
			st.Spawns = uint64(scanInt(v, 0))
		case "restarts":
			st.Restarts = uint64(scanInt(v, 0))
		case "failures":
			st.Failures = uint64(scanInt(v, 0))
		case "output_dropped_lines":
			st.OutputDroppedLines = uint64(scanInt(v, 0))
		case "ready_latency":
			_ = json.Unmarshal(v, &st.ReadyLatency)
		case "ready_at":
			at, ok := rpc.Object(v)
			if !ok {
				continue
			}
			st.ReadyAt = make(map[int]time.Time)
			for i, tv := range at.All() {
				n, err := strconv.Atoi(i)
				if t, ok := scanTime(tv); ok && err == nil {
					st.ReadyAt[n] = t
				}
			}
		case "exits":
			elems := rpc.Elements(v)
			st.Exits = make([]container.ExitCount, 0, len(elems))
			for _, e := range elems {
				eo, ok := rpc.Object(e)
				if !ok {
					continue
				}
				ec := container.ExitCount{Code: -1}
				for ek, ev := range eo.All() {
					switch ek {
					case "instance":
						ec.Instance = int(scanInt(ev, 0))
					case "reason":
						ec.Reason, _ = rpc.String(ev)
					case "code":
						ec.Code = int(scanInt(ev, -1))
					case "signal":
						ec.Signal, _ = rpc.String(ev)
					case "count":
						ec.Count = uint64(scanInt(ev, 0))
					}
				}
				st.Exits = append(st.Exits, ec)
			}
		}
	}
	return st
}

// scanInt decodes a JSON integer, or returns bad.
func scanInt(raw []byte, bad int64) int64 {
	if n, ok := rpc.Int(raw); ok {
		return n
	}
	return bad
}

// scanTime decodes an RFC 3339 time string.
func scanTime(raw []byte) (time.Time, bool) {
	s, ok := rpc.String(raw)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}
