// Package statusview has one job: it joins the replies of the supervisor's
// status call (the registered connections, the controller's children, the
// memory and process monitors' figures) into one row per worker and totals
// per service, and resolves the names an operator gives a worker
// (SERVICE.INSTANCE, a pid, a connection id or a prefix of one).
package statusview

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigild/vigil/control"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// The shapes of the status replies, as the controller and the monitors send
// them. Every field is optional: a missing part leaves its columns blank.

// Child is one entry of the controller's {"children": [...]}: the wire
// type of package control, decoded field by field (a field that does not
// parse is left zero).
type Child = control.Child

// ServiceStats is one service's entry of the controller's "statistics".
type ServiceStats struct {
	Spawns      int     `json:"spawns"`       // processes started, restarts included
	Restarts    int     `json:"restarts"`     // processes started after an instance's first
	Failures    int     `json:"failures"`     // unsuccessful exits and failed spawns
	RestartRate float64 `json:"restart_rate"` // restarts per second over the last minute
	FailureRate float64 `json:"failure_rate"` // failures per second over the last minute
	// OutputDroppedLines counts the output lines a destination (console,
	// file, journal) dropped because it fell behind.
	OutputDroppedLines uint64 `json:"output_dropped_lines"`
}

// state is the part of a registered state the operator's tools read.
type state struct {
	Role      string          `json:"role"`
	Name      string          `json:"name"`
	Instance  json.RawMessage `json:"instance"`
	ProcessID json.RawMessage `json:"process_id"`
	Outputs   []string        `json:"outputs"`
}

// Worker is one row of the status table: a child of the controller, a
// registered connection, or both (matched by pid).
type Worker struct {
	Service  string  // the service's name; "": registered no name
	Instance int     // -1: unknown
	PID      int     // 0: unknown
	ConnID   string  // the supervisor's connection id; "": not connected
	State    string  // the controller's state of the child, else "connected"
	Uptime   float64 // seconds; -1: unknown
	CPU      float64 // percent of one core; -1: unknown
	Private  float64 // bytes; -1: unknown
	Resident float64 // bytes; -1: unknown
	Restarts int     // -1: unknown
	LastExit string  // how the last process of this instance ended; "": none
	// LastError is the controller's last error starting this instance.
	LastError string
	// Status is the last status text the process sent, left out when it
	// names a state the worker is no longer in ("starting" once ready):
	// see StatusText.
	Status string
	// NextRestart is when a backing-off instance starts again; zero: none
	// scheduled.
	NextRestart time.Time
	// Outputs are the ways the worker says its diagnostics can deliver a
	// result (its registered "outputs": "inline", "path", "log"); nil when
	// it does not say (the original's workers).
	Outputs []string
	// Controller marks the controller's own registration (never a row).
	Controller bool
	// Unverified marks a registration whose "verified" is false: the
	// supervisor cannot tell which process made it, so its monitors leave
	// the process alone.
	Unverified bool
}

// Name returns SERVICE.INSTANCE, or what is known of it.
func (w *Worker) Name() string {
	switch {
	case w.Controller:
		return "controller"
	case w.Service == "":
		return "(unnamed)"
	case w.Instance < 0:
		return w.Service
	default:
		return w.Service + "." + strconv.Itoa(w.Instance)
	}
}

// Describe names the worker for messages: "web.0 (pid 123, connection 1a2b3c4d)".
func (w *Worker) Describe() string {
	var parts []string
	if w.PID > 0 {
		parts = append(parts, "pid "+strconv.Itoa(w.PID))
	}
	if w.ConnID != "" {
		parts = append(parts, "connection "+ShortID(w.ConnID))
	}
	if len(parts) == 0 {
		return w.Name()
	}
	return w.Name() + " (" + strings.Join(parts, ", ") + ")"
}

// Service is a service's totals: its workers' figures added up (-1 when
// no worker's figure is known), the controller's statistics and the memory
// monitor's kills, when they came.
type Service struct {
	Name     string         // "": the connections that registered no name
	Workers  int            // rows (workers) of the service
	Ready    int            // workers whose state is "ready"
	CPU      float64        // percent of one core; -1: unknown
	Private  float64        // bytes; -1: unknown
	Resident float64        // bytes; -1: unknown
	Restarts int            // the workers' restarts added up (unknown counts 0)
	Stats    *ServiceStats  // nil: the controller sent none
	Kills    map[string]int // by reason; nil: none reported per service
}

// View is a status reply joined into rows. New builds it; it is not changed
// afterwards, and may be read by several goroutines.
type View struct {
	Workers    []*Worker // sorted by service, instance, pid
	Controller *Worker   // nil when no controller is registered
	// HasChildren is true when the controller's children reply came.
	HasChildren bool
	Children    []Child    // the controller's children, as they came
	Services    []*Service // the totals per service, sorted by name ("" last)
	// Kills are the memory monitor's kills by reason, when it does not say
	// which service they were in.
	Kills map[string]int
	// Warnings are the failed parts (a monitor or the controller).
	Warnings []string
	// Connections are all registrations, the controller's included.
	Connections []*Worker
}

// ShortID shortens a connection id to its first 8 characters, as the table
// shows it.
func ShortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// New joins the replies of a status call: the controller's children, the
// connections, and the monitors' figures, by pid. It reads st.Parts and the
// connections of st.Final (st.Connections is not needed, so a Status built
// from the raw replies alone will do). Every part is optional; a part that
// cannot be read leaves its columns unknown and adds a warning to the View.
// Nothing is decoded that the rows do not need: with 1,000 workers,
// decoding is most of `vigil status`'s time.
func New(st *supervisor.Status) *View {
	v := &View{}
	names := interned{}
	var (
		mem   map[int]memFigures
		proc  map[int]procFigures
		kills []byte
		stats map[string]*ServiceStats
	)
	for _, p := range st.Parts {
		switch {
		case p.Has("memory_monitor"):
			raw, _ := p.Get("memory_monitor")
			var ok bool
			if mem, kills, ok = readMemory(raw); !ok {
				v.Warnings = append(v.Warnings, fmt.Sprintf("memory monitor: unreadable status: %.64s", raw))
			}
		case p.Has("process_monitor"):
			raw, _ := p.Get("process_monitor")
			var ok bool
			if proc, ok = readProcess(raw); !ok {
				v.Warnings = append(v.Warnings, fmt.Sprintf("process monitor: unreadable status: %.64s", raw))
			}
		case p.Has("children"):
			v.HasChildren = true
			raw, _ := p.Get("children")
			v.Children = decodeChildren(raw, names)
			if err := p.DecodeField("statistics", &stats); err != nil {
				v.Warnings = append(v.Warnings, fmt.Sprintf("controller: unreadable statistics: %v", err))
			}
		case p.Has("error"):
			who, _ := p.GetString("monitor")
			if c, ok := p.GetString("controller"); ok {
				who = "controller " + ShortID(c)
			}
			if who == "" {
				who = "a status part"
			}
			var e struct {
				Message string `json:"message"`
			}
			msg := ""
			if raw, _ := p.Get("error"); len(raw) > 0 && raw[0] == '"' {
				msg, _ = p.GetString("error")
			} else if p.DecodeField("error", &e) == nil {
				msg = e.Message
			}
			v.Warnings = append(v.Warnings, fmt.Sprintf("%s failed: %s", who, msg))
		}
	}

	// Connections, indexed by pid for the children to claim. The rows are
	// made in one block.
	raw, _ := st.Final.Get("connections")
	conns := decodeConnections(raw, names)
	block := make([]Worker, len(conns)+len(v.Children))
	v.Connections = make([]*Worker, 0, len(conns))
	byPID := make(map[int]int, len(conns)) // the first unclaimed connection of a pid, by index
	next := make([]int, len(conns))        // the next connection of the same pid; -1: none
	claimed := make([]bool, len(conns))
	for i := len(conns) - 1; i >= 0; i-- {
		c := &conns[i]
		s := &c.State
		w := &block[i]
		*w = Worker{
			Service: s.Name, Instance: scanInt(s.Instance, -1), PID: scanInt(c.ProcessID, 0), ConnID: c.ConnectionID,
			State: "connected", Uptime: -1, CPU: -1, Private: -1, Resident: -1, Restarts: -1, Outputs: s.Outputs,
			Unverified: c.Unverified,
		}
		if w.PID == 0 {
			w.PID = scanInt(s.ProcessID, 0)
		}
		next[i] = -1
		if s.Role == "controller" {
			w.Controller = true
			continue
		}
		if j, ok := byPID[w.PID]; ok {
			next[i] = j
		}
		byPID[w.PID] = i
	}
	for i := range conns {
		w := &block[i]
		v.Connections = append(v.Connections, w)
		if w.Controller {
			v.Controller = w
		}
	}
	v.Workers = make([]*Worker, 0, len(v.Children)+len(conns))
	for i := range v.Children {
		ch := &v.Children[i]
		w := &block[len(conns)+i]
		*w = Worker{
			Service: ch.Service, Instance: ch.Instance, PID: ch.PID, State: ch.State,
			Uptime: -1, CPU: -1, Private: -1, Resident: -1, Restarts: ch.Restarts,
			LastError: ch.LastError, Status: StatusText(ch.State, ch.Status),
		}
		if ch.Uptime != nil {
			w.Uptime = *ch.Uptime
		}
		if ch.LastExit != nil {
			w.LastExit = *ch.LastExit
		}
		if ch.NextRestart != nil {
			w.NextRestart = *ch.NextRestart
		}
		// The first unclaimed connection of the pid is the head of its
		// chain: claiming it moves the head on (walking the chain from its
		// start each time was quadratic when many connections share a
		// pid: 10,000 from one process, as a bench holds them).
		if j, ok := byPID[ch.PID]; ch.PID > 0 && ok && j >= 0 {
			claimed[j] = true
			byPID[ch.PID] = next[j]
			c := &block[j]
			w.ConnID = c.ConnID
			w.Outputs = c.Outputs
			w.Unverified = c.Unverified
			c.Service, c.Instance = ch.Service, ch.Instance
		}
		v.Workers = append(v.Workers, w)
	}
	for i, c := range v.Connections {
		if !c.Controller && !claimed[i] {
			v.Workers = append(v.Workers, c)
		}
	}

	// The monitors' figures, by pid.
	for _, w := range v.Workers {
		if w.PID <= 0 {
			continue
		}
		if m, ok := proc[w.PID]; ok {
			if m.cpu >= 0 {
				w.CPU = m.cpu
			}
			if m.resident >= 0 {
				w.Resident = m.resident
			}
			if m.private >= 0 {
				w.Private = m.private
			}
			if w.Uptime < 0 && m.elapsed >= 0 {
				w.Uptime = m.elapsed
			}
		}
		if m, ok := mem[w.PID]; ok {
			if m.private >= 0 {
				w.Private = m.private
			}
			if m.resident >= 0 {
				w.Resident = m.resident
			} else if m.current >= 0 {
				w.Resident = m.current
			}
		}
	}
	slices.SortStableFunc(v.Workers, func(a, b *Worker) int {
		if c := cmp.Compare(b2i(a.Service == ""), b2i(b.Service == "")); c != 0 {
			return c // unnamed connections last
		}
		if c := cmp.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Instance, b.Instance); c != 0 {
			return c
		}
		return cmp.Compare(a.PID, b.PID)
	})

	// Services' totals.
	byName := make(map[string]*Service)
	summary := func(name string) *Service {
		s := byName[name]
		if s == nil {
			s = &Service{Name: name, CPU: -1, Private: -1, Resident: -1}
			byName[name] = s
			v.Services = append(v.Services, s)
		}
		return s
	}
	for _, w := range v.Workers {
		s := summary(w.Service)
		s.Workers++
		if w.State == "ready" {
			s.Ready++
		}
		s.CPU = addKnown(s.CPU, w.CPU)
		s.Private = addKnown(s.Private, w.Private)
		s.Resident = addKnown(s.Resident, w.Resident)
		s.Restarts += max(w.Restarts, 0)
	}
	for name, st := range stats {
		if st != nil {
			summary(name).Stats = st
		}
	}
	if len(kills) > 0 && isObject(kills) {
		for reason, raw := range rpc.Fields(kills) {
			if n, ok := smallInt(raw); ok {
				if v.Kills == nil {
					v.Kills = make(map[string]int)
				}
				v.Kills[string(reason)] = n
				continue
			}
			// {"service": {"reason": n}}: kills per service.
			var per map[string]int
			if json.Unmarshal(raw, &per) == nil {
				s := summary(string(reason))
				s.Kills = per
			}
		}
	}
	slices.SortFunc(v.Services, func(a, b *Service) int {
		if c := cmp.Compare(b2i(a.Name == ""), b2i(b.Name == "")); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return v
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// addKnown adds a figure to a total; -1 means unknown, for either.
func addKnown(total, v float64) float64 {
	switch {
	case v < 0:
		return total
	case total < 0:
		return v
	default:
		return total + v
	}
}
