package main

import (
	"context"
	"slices"
	"time"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/rpc"
)

// controllerLink serves the controller's operations through the supervisor:
// children (the state of every child) and restart_children.
type controllerLink struct {
	ctrl *container.Controller
}

func (l *controllerLink) handlers() rpc.Handlers {
	return rpc.Handlers{
		"children":         l.doChildren,
		"restart_children": l.doRestartChildren,
	}
}

// childJSON is one child as the operators' tools read it.
type childJSON struct {
	Service     string     `json:"service"`
	Instance    int        `json:"instance"`
	PID         int        `json:"pid"`
	State       string     `json:"state"`
	Restarts    int        `json:"restarts"`
	LastExit    *string    `json:"last_exit"`
	LastError   string     `json:"last_error,omitempty"`
	Status      string     `json:"status,omitempty"`
	StartedAt   *time.Time `json:"started_at"`
	Uptime      float64    `json:"uptime"`
	NextRestart *time.Time `json:"next_restart"`
}

func toChildJSON(c container.ChildInfo) childJSON {
	j := childJSON{
		Service: c.Service, Instance: c.Instance, PID: c.PID, State: c.State.String(),
		Restarts: c.Restarts, LastError: c.LastError, Status: c.Status,
		Uptime: c.Uptime.Seconds(),
	}
	if c.LastExit != nil {
		s := c.LastExit.String()
		j.LastExit = &s
	}
	if !c.Started.IsZero() {
		t := c.Started
		j.StartedAt = &t
	}
	if !c.NextRestart.IsZero() {
		t := c.NextRestart
		j.NextRestart = &t
	}
	return j
}

// doChildren answers {"children": [...], "statistics": {service: {...}}}.
func (l *controllerLink) doChildren(ctx context.Context, call *rpc.Call) error {
	children := l.ctrl.Children()
	list := make([]childJSON, len(children))
	for i, c := range children {
		list[i] = toChildJSON(c)
	}
	stats := make(map[string]container.Statistics)
	for _, s := range l.ctrl.Statistics() {
		stats[s.Service] = s
	}
	return call.Finish(map[string]any{"children": list, "statistics": stats})
}

// doRestartChildren restarts a service's children, or one of them, one at
// a time behind ready replacements, and answers with the pids replaced.
func (l *controllerLink) doRestartChildren(ctx context.Context, call *rpc.Call) error {
	var p struct {
		Service  string `json:"service"`
		Instance *int   `json:"instance"`
	}
	if err := call.Message().Decode(&p); err != nil {
		return rpc.ArgumentError("restart_children: %v", err)
	}
	if p.Service == "" {
		return rpc.ArgumentError("restart_children: 'service' is required")
	}
	instance := -1
	if p.Instance != nil {
		if *p.Instance < 0 {
			return rpc.ArgumentError("restart_children: 'instance' must be 0 or more, not %d", *p.Instance)
		}
		instance = *p.Instance
	}
	before := l.pids(p.Service, instance)
	if err := l.ctrl.RestartChildren(ctx, p.Service, instance); err != nil {
		return rpc.Errorf("RestartError", "restart_children %s: %v", p.Service, err)
	}
	after := l.pids(p.Service, instance)
	restarted := make([]int, 0, len(before))
	for _, pid := range before {
		if !slices.Contains(after, pid) {
			restarted = append(restarted, pid)
		}
	}
	return call.Finish(map[string]any{"restarted": restarted, "pids": after})
}

// pids lists the live processes of a service's instances (instance -1:
// all), leaving out those being stopped.
func (l *controllerLink) pids(service string, instance int) []int {
	var pids []int
	for _, c := range l.ctrl.Children() {
		if c.Service == service && (instance < 0 || c.Instance == instance) && c.PID != 0 && c.State != container.StateStopping {
			pids = append(pids, c.PID)
		}
	}
	return pids
}
