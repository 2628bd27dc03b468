package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/logs"
	"github.com/vigild/vigil/rpc"
)

// Controller is what the operations need of a controller;
// *container.Controller is one.
type Controller interface {
	Children() []container.ChildInfo
	Statistics() []container.Statistics
	RestartChildren(ctx context.Context, service string, instance int) error
}

// Options configure Handlers.
type Options struct {
	// Tracking is sent in every "children" reply (see Children.Tracking).
	Tracking string
	// Logs, when set, is served by the "logs" operation.
	Logs *logs.Hub
	// Reload, when set, reads the configuration anew and applies it: the
	// "reload" operation.
	Reload func(ctx context.Context) ([]container.ServiceChange, error)
}

// Handlers returns the operations a controller serves: "children",
// "restart_children", "logs" when Options.Logs is set, and when ctrl is a
// Lifecycle too, "start", "stop", "scale", "shutdown" and (with
// Options.Reload) "reload".
func Handlers(ctrl Controller, opts Options) rpc.Handlers {
	s := &server{ctrl: ctrl, opts: opts}
	h := rpc.Handlers{
		"children":         s.children,
		"restart_children": s.restartChildren,
	}
	if opts.Logs != nil {
		h["logs"] = Logs(opts.Logs)
	}
	if lc, ok := ctrl.(Lifecycle); ok {
		s.lc = lc
		s.lifecycleHandlers(h)
	}
	return h
}

type server struct {
	ctrl Controller
	lc   Lifecycle // nil: ctrl serves no lifecycle
	opts Options

	mu    sync.Mutex
	cache *encodedChildren // nil: none yet
}

// versioned is a Controller that counts the changes of what Children shows
// (other than uptimes); *container.Controller is one. The children of such
// a controller are encoded once per change, not on every call.
type versioned interface {
	Version() uint64
}

// children answers with a Children. For a controller with a Version, the
// children's encoding is kept while the Version is the same, and only
// their uptimes are written anew, from the time that has passed; the
// statistics are read each time. A controller without one is encoded
// anew on each call.
func (s *server) children(ctx context.Context, call *rpc.Call) error {
	if _, ok := s.ctrl.(versioned); !ok {
		// Nothing to keep: encoded whole, at once.
		infos := s.ctrl.Children()
		reply := Children{Children: make([]Child, len(infos)), Statistics: map[string]container.Statistics{}, Tracking: s.opts.Tracking}
		for i, c := range infos {
			reply.Children[i] = FromInfo(c)
		}
		for _, st := range s.ctrl.Statistics() {
			reply.Statistics[st.Service] = st
		}
		return call.Finish(reply)
	}
	enc, fresh := s.encoded()
	now := enc.at // just read: the uptimes as they are
	if !fresh {
		now = time.Now()
	}
	reply := Children{Statistics: map[string]container.Statistics{}, Tracking: s.opts.Tracking}
	for _, st := range s.ctrl.Statistics() {
		reply.Statistics[st.Service] = st
	}
	rest, err := json.Marshal(reply)
	if err != nil {
		return err
	}
	// rest is {"children":null,...}: the children go in place of the null.
	const head = `{"children":null`
	if !bytes.HasPrefix(rest, []byte(head)) {
		return fmt.Errorf("children: unexpected encoding %.40s", rest)
	}
	buf := make([]byte, 0, len(enc.parts)+24*len(enc.cuts)+len(rest)+16)
	buf = append(buf, `{"children":`...)
	buf = enc.appendTo(buf, now)
	buf = append(buf, rest[len(head):]...)
	return call.Finish(json.RawMessage(buf))
}

// encoded returns the children's encoding, made anew (fresh) when the
// controller (a versioned one) has changed since.
func (s *server) encoded() (enc *encodedChildren, fresh bool) {
	version := s.ctrl.(versioned).Version() // read before the children: a change in between makes the next call encode again
	s.mu.Lock()
	c := s.cache
	s.mu.Unlock()
	if c != nil && c.version == version {
		return c, false
	}
	c = encodeChildren(s.ctrl.Children(), version, time.Now())
	s.mu.Lock()
	s.cache = c
	s.mu.Unlock()
	return c, true
}

// encodedChildren is the JSON array of the children as they were at a
// moment, with each uptime cut out: written anew on each reply, from the
// time passed since.
type encodedChildren struct {
	version uint64
	at      time.Time // when the children were read
	parts   []byte    // the array, each uptime's value left out
	cuts    []uptimeCut
}

// uptimeCut is where an uptime goes in parts, and what it was at the
// moment of reading; running: it grows with time (a process runs).
type uptimeCut struct {
	at      int
	uptime  float64
	running bool
}

// uptimeNull is how a child with no uptime is encoded; it cannot occur
// inside a string value (whose quotes are escaped).
const uptimeNull = `"uptime":null`

func encodeChildren(infos []container.ChildInfo, version uint64, at time.Time) *encodedChildren {
	c := &encodedChildren{version: version, at: at, cuts: make([]uptimeCut, 0, len(infos))}
	c.parts = append(c.parts, '[')
	for i, info := range infos {
		if i > 0 {
			c.parts = append(c.parts, ',')
		}
		ch := FromInfo(info)
		up := ch.Uptime
		ch.Uptime = nil
		b, err := json.Marshal(ch)
		cut := bytes.Index(b, []byte(uptimeNull))
		if err != nil || cut < 0 || up == nil {
			c.parts = append(c.parts, b...) // no uptime to write: as it is
			continue
		}
		cut += len(uptimeNull) - len("null")
		c.parts = append(c.parts, b[:cut]...)
		c.cuts = append(c.cuts, uptimeCut{at: len(c.parts), uptime: *up, running: !info.Started.IsZero()})
		c.parts = append(c.parts, b[cut+len("null"):]...)
	}
	c.parts = append(c.parts, ']')
	return c
}

// appendTo appends the array with the uptimes as they are at now.
func (c *encodedChildren) appendTo(buf []byte, now time.Time) []byte {
	passed := max(now.Sub(c.at).Seconds(), 0)
	from := 0
	for _, cut := range c.cuts {
		buf = append(buf, c.parts[from:cut.at]...)
		up := cut.uptime
		if cut.running {
			up += passed
		}
		buf = appendSeconds(buf, up)
		from = cut.at
	}
	return append(buf, c.parts[from:]...)
}

// appendSeconds appends f as encoding/json writes a float64.
func appendSeconds(buf []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(buf, '0')
	}
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		b, _ := json.Marshal(f)
		return append(buf, b...)
	}
	return strconv.AppendFloat(buf, f, 'f', -1, 64)
}

// RestartReply is the "restart_children" operation's reply.
type RestartReply struct {
	// Restarted are the pids replaced.
	Restarted []int `json:"restarted"`
	// PIDs are the pids running now.
	PIDs []int `json:"pids"`
}

// restartChildren restarts a service's children ({"service", "instance"?}),
// one at a time behind ready replacements, and answers with a
// RestartReply.
func (s *server) restartChildren(ctx context.Context, call *rpc.Call) error {
	var p struct {
		Service  string `json:"service"`
		Instance *int   `json:"instance"`
	}
	if err := call.Message().Decode(&p); err != nil {
		return rpc.ArgumentError("restart_children: %v", err)
	}
	if p.Service == "" {
		p.Service = "all"
	}
	if p.Service == "all" && s.lc == nil {
		return rpc.ArgumentError("restart_children: 'service' is required")
	}
	instance := -1
	if p.Instance != nil {
		if *p.Instance < 0 {
			return rpc.ArgumentError("restart_children: 'instance' must be 0 or more, not %d", *p.Instance)
		}
		instance = *p.Instance
	}
	before := s.pids(p.Service, instance)
	names := []string{p.Service}
	if p.Service == "all" {
		names = s.services("all")
	}
	for _, name := range names {
		if err := s.ctrl.RestartChildren(ctx, name, instance); err != nil {
			return rpc.Errorf("RestartError", "restart_children %s: %v", name, err)
		}
	}
	after := s.pids(p.Service, instance)
	reply := RestartReply{Restarted: make([]int, 0, len(before)), PIDs: after}
	for _, pid := range before {
		if !slices.Contains(after, pid) {
			reply.Restarted = append(reply.Restarted, pid)
		}
	}
	return call.Finish(reply)
}

// pids lists the live processes of a service's instances (instance -1:
// all), leaving out those being stopped.
func (s *server) pids(service string, instance int) []int {
	names := []string{service}
	if service == "all" && s.lc != nil {
		names = s.services("all")
	}
	var pids []int
	for _, c := range s.ctrl.Children() {
		if slices.Contains(names, c.Service) && (instance < 0 || c.Instance == instance) && c.PID != 0 && c.State != container.StateStopping {
			pids = append(pids, c.PID)
		}
	}
	return pids
}
