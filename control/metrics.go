package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/rpc"
)

// MetricsOperation is the operation the supervisor's /metrics asks the
// controller for its figures with, at every scrape: the children and the
// statistics, as "children" has them, in a compact form that is quick to
// write and to read for thousands of workers (the "children" reply of
// 1,000 workers is some 400 KB of JSON, and took most of a scrape's time).
const MetricsOperation = "metrics"

// MetricsHandler returns the "metrics" operation. Its final reply is
//
//	{"services": [{"service": NAME, "spawns": N, "restarts": N,
//	  "failures": N, "dropped": N, "ready_latency": HISTOGRAM,
//	  "workers": [[INSTANCE, PID, STATE, RESTARTS, STARTED, READY, NEXT], ...],
//	  "exits": [[INSTANCE, REASON, CODE, SIGNAL, COUNT], ...]}, ...]}
//
// with a worker for each child, in the order of Children (an instance's
// current process or the instance itself first); STARTED, READY (its
// first ready, 0 if the current process has not been ready) and NEXT (a
// back-off's end) in nanoseconds since the epoch, 0 for none;
// HISTOGRAM a container.Histogram. DecodeMetrics reads it.
func MetricsHandler(ctrl Controller) rpc.Handler {
	return func(ctx context.Context, call *rpc.Call) error {
		return call.Finish(json.RawMessage(AppendMetrics(nil, ctrl.Children(), ctrl.Statistics())))
	}
}

// AppendMetrics appends the reply of the "metrics" operation for children
// and statistics to b.
func AppendMetrics(b []byte, children []container.ChildInfo, stats []container.Statistics) []byte {
	type service struct {
		stats    *container.Statistics
		children []*container.ChildInfo
	}
	var order []string
	byName := map[string]*service{}
	get := func(name string) *service {
		s := byName[name]
		if s == nil {
			s = &service{}
			byName[name] = s
			order = append(order, name)
		}
		return s
	}
	for i := range stats {
		get(stats[i].Service).stats = &stats[i]
	}
	for i := range children {
		s := get(children[i].Service)
		s.children = append(s.children, &children[i])
	}
	b = append(b, `{"services":[`...)
	for i, name := range order {
		s := byName[name]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"service":`...)
		b = appendString(b, name)
		st := s.stats
		if st == nil {
			st = &container.Statistics{}
		}
		b = strconv.AppendUint(append(b, `,"spawns":`...), st.Spawns, 10)
		b = strconv.AppendUint(append(b, `,"restarts":`...), st.Restarts, 10)
		b = strconv.AppendUint(append(b, `,"failures":`...), st.Failures, 10)
		b = strconv.AppendUint(append(b, `,"dropped":`...), st.OutputDroppedLines, 10)
		if h, err := json.Marshal(st.ReadyLatency); err == nil {
			b = append(append(b, `,"ready_latency":`...), h...)
		}
		b = append(b, `,"workers":[`...)
		for j, c := range s.children {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(append(b, '['), int64(c.Instance), 10)
			b = strconv.AppendInt(append(b, ','), int64(c.PID), 10)
			b = appendString(append(b, ','), c.State.String())
			b = strconv.AppendInt(append(b, ','), int64(c.Restarts), 10)
			b = strconv.AppendInt(append(b, ','), unixNano(c.Started), 10)
			ready := int64(0)
			if at, ok := st.ReadyAt[c.Instance]; ok && !c.Started.IsZero() && !at.Before(c.Started) {
				ready = at.UnixNano()
			}
			b = strconv.AppendInt(append(b, ','), ready, 10)
			b = strconv.AppendInt(append(b, ','), unixNano(c.NextRestart), 10)
			b = append(b, ']')
		}
		b = append(b, `],"exits":[`...)
		for j, e := range st.Exits {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(append(b, '['), int64(e.Instance), 10)
			b = appendString(append(b, ','), e.Reason)
			b = strconv.AppendInt(append(b, ','), int64(e.Code), 10)
			b = appendString(append(b, ','), e.Signal)
			b = strconv.AppendUint(append(b, ','), e.Count, 10)
			b = append(b, ']')
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}

// unixNano is t in nanoseconds since the epoch, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// ErrBadMetrics is wrapped by DecodeMetrics' errors.
var ErrBadMetrics = errors.New("control: bad metrics reply")

// DecodeMetrics reads the "metrics" operation's reply into a Children:
// each child's service, instance, pid, state, restarts, start and next
// restart, and each service's spawns, restarts, failures, dropped lines,
// exits, readiness latency and ready times (the other fields are left
// zero).
func DecodeMetrics(m *rpc.Message) (*Children, error) {
	raw, ok := m.GetArray("services")
	if !ok {
		return nil, fmt.Errorf("%w: no \"services\"", ErrBadMetrics)
	}
	out := &Children{Statistics: make(map[string]container.Statistics, len(raw))}
	for _, e := range raw {
		obj, ok := rpc.Object(e)
		if !ok {
			return nil, fmt.Errorf("%w: a service is not an object", ErrBadMetrics)
		}
		name, _ := obj.GetString("service")
		st := container.Statistics{Service: name}
		for k, v := range obj.All() {
			switch k {
			case "spawns":
				st.Spawns = uint64(scanInt(v, 0))
			case "restarts":
				st.Restarts = uint64(scanInt(v, 0))
			case "failures":
				st.Failures = uint64(scanInt(v, 0))
			case "dropped":
				st.OutputDroppedLines = uint64(scanInt(v, 0))
			case "ready_latency":
				if err := json.Unmarshal(v, &st.ReadyLatency); err != nil {
					return nil, fmt.Errorf("%w: %s: ready_latency: %v", ErrBadMetrics, name, err)
				}
			case "workers":
				for _, w := range rpc.Elements(v) {
					f := rpc.Elements(w)
					if len(f) < 7 {
						return nil, fmt.Errorf("%w: %s: a worker has %d fields, not 7", ErrBadMetrics, name, len(f))
					}
					c := Child{Service: name, Instance: int(scanInt(f[0], -1)), PID: int(scanInt(f[1], 0)), Restarts: int(scanInt(f[3], 0))}
					c.State, _ = rpc.String(f[2])
					c.StartedAt = timeOf(scanInt(f[4], 0))
					c.NextRestart = timeOf(scanInt(f[6], 0))
					if ready := timeOf(scanInt(f[5], 0)); ready != nil {
						if st.ReadyAt == nil {
							st.ReadyAt = make(map[int]time.Time)
						}
						st.ReadyAt[c.Instance] = *ready
					}
					out.Children = append(out.Children, c)
				}
			case "exits":
				for _, x := range rpc.Elements(v) {
					f := rpc.Elements(x)
					if len(f) < 5 {
						return nil, fmt.Errorf("%w: %s: an exit has %d fields, not 5", ErrBadMetrics, name, len(f))
					}
					ec := container.ExitCount{Instance: int(scanInt(f[0], 0)), Code: int(scanInt(f[2], -1)), Count: uint64(scanInt(f[4], 0))}
					ec.Reason, _ = rpc.String(f[1])
					ec.Signal, _ = rpc.String(f[3])
					st.Exits = append(st.Exits, ec)
				}
			}
		}
		out.Statistics[name] = st
	}
	return out, nil
}

// timeOf is the time of nanoseconds since the epoch; nil for 0.
func timeOf(ns int64) *time.Time {
	if ns == 0 {
		return nil
	}
	t := time.Unix(0, ns).UTC()
	return &t
}

// scanInt decodes a JSON integer, or returns bad.
func scanInt(raw []byte, bad int64) int64 {
	if n, ok := rpc.Int(raw); ok {
		return n
	}
	return bad
}
