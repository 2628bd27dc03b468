package control

import (
	"context"
	"slices"

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
}

// children answers with a Children.
func (s *server) children(ctx context.Context, call *rpc.Call) error {
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
