package control

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/rpc"
)

// Lifecycle is what the lifecycle operations need of a controller;
// *container.Controller is one.
type Lifecycle interface {
	Controller
	Specs() []container.Spec
	StartService(ctx context.Context, service string, instance int) error
	StopService(ctx context.Context, service string, instance int) error
	Scale(ctx context.Context, service string, n int) error
	Shutdown()
}

// The lifecycle operations, served when Options.Lifecycle is set:
//
//	start    {service, instance?}   start a stopped or failed service (or one
//	                                instance); waits until ready
//	stop     {service, instance?}   stop it and keep it stopped (across
//	                                reloads) until started
//	scale    {service, count}       set its number of instances
//	reload   {}                     read the configuration anew and apply it
//	                                by difference (Options.Reload)
//	shutdown {}                     stop everything, vigil run included
//
// service "all" (or, for restart_children, no service) means every
// configured service, vigil's own supervisor left out. Each answers once
// its outcome is known: {"service":..., "pids":[...]} (reload:
// {"changes":[{"service","change","error"?}]}), or fails with class
// "LifecycleError" and the reason.
func (s *server) lifecycleHandlers(h rpc.Handlers) {
	h["start"] = s.start
	h["stop"] = s.stop
	h["scale"] = s.scale
	h["shutdown"] = s.shutdown
	if s.opts.Reload != nil {
		h["reload"] = s.reload
	}
}

// target are the parameters naming what to act on.
type target struct {
	Service  string `json:"service"`
	Instance *int   `json:"instance"`
	Count    *int   `json:"count"`
}

func (s *server) target(call *rpc.Call, op string) (target, error) {
	var p target
	if err := call.Message().Decode(&p); err != nil {
		return p, rpc.ArgumentError("%s: %v", op, err)
	}
	if p.Service == "" {
		return p, rpc.ArgumentError("%s: 'service' is required (a service's name, or \"all\")", op)
	}
	if p.Instance != nil && *p.Instance < 0 {
		return p, rpc.ArgumentError("%s: 'instance' must be 0 or more, not %d", op, *p.Instance)
	}
	return p, nil
}

// services are the services a target names: itself, or every configured
// one for "all".
func (s *server) services(name string) []string {
	if name != "all" {
		return []string{name}
	}
	var out []string
	for _, sp := range s.lc.Specs() {
		if !sp.Persistent {
			out = append(out, sp.Name)
		}
	}
	return out
}

func instanceOf(p target) int {
	if p.Instance == nil {
		return -1
	}
	return *p.Instance
}

func lifecycleError(op string, err error) error {
	return rpc.Errorf("LifecycleError", "%s: %v", op, err)
}

func (s *server) start(ctx context.Context, call *rpc.Call) error {
	p, err := s.target(call, "start")
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range s.services(p.Service) {
		if err := s.lc.StartService(ctx, name, instanceOf(p)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return lifecycleError("start "+p.Service, err)
	}
	return call.Finish(map[string]any{"service": p.Service, "pids": s.pids(p.Service, instanceOf(p))})
}

// persistent refuses an operation on a persistent service (vigil's own
// supervisor): nothing could start it again.
func (s *server) persistent(op, name string) error {
	for _, sp := range s.lc.Specs() {
		if sp.Name == name && sp.Persistent {
			return rpc.ArgumentError("%s: %s is vigil's own: it cannot be stopped or scaled (vigil restart %s replaces it)", op, name, name)
		}
	}
	return nil
}

func (s *server) stop(ctx context.Context, call *rpc.Call) error {
	p, err := s.target(call, "stop")
	if err != nil {
		return err
	}
	if err := s.persistent("stop", p.Service); err != nil {
		return err
	}
	before := s.pids(p.Service, instanceOf(p))
	var errs []error
	for _, name := range s.services(p.Service) {
		if err := s.lc.StopService(ctx, name, instanceOf(p)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return lifecycleError("stop "+p.Service, err)
	}
	return call.Finish(map[string]any{"service": p.Service, "stopped": before})
}

func (s *server) scale(ctx context.Context, call *rpc.Call) error {
	p, err := s.target(call, "scale")
	if err != nil {
		return err
	}
	if p.Count == nil || *p.Count < 0 || p.Service == "all" {
		return rpc.ArgumentError("scale: 'count' (0 or more) and one service are required")
	}
	if err := s.persistent("scale", p.Service); err != nil {
		return err
	}
	if err := s.lc.Scale(ctx, p.Service, *p.Count); err != nil {
		return lifecycleError("scale "+p.Service, err)
	}
	return call.Finish(map[string]any{"service": p.Service, "count": *p.Count, "pids": s.pids(p.Service, -1)})
}

func (s *server) shutdown(ctx context.Context, call *rpc.Call) error {
	if err := call.Finish(map[string]any{"shutdown": true}); err != nil {
		return err
	}
	s.lc.Shutdown()
	return nil
}

// Change is one service's line of a reload's answer.
type Change struct {
	// Service is the service's name.
	Service string `json:"service"`
	// Change is "started", "replaced", "stopped" or "unchanged".
	Change string `json:"change"`
	// Error is why it failed, if it did.
	Error string `json:"error,omitempty"`
}

func (s *server) reload(ctx context.Context, call *rpc.Call) error {
	changes, err := s.opts.Reload(ctx)
	out := make([]Change, 0, len(changes))
	for _, ch := range changes {
		c := Change{Service: ch.Service, Change: ch.Change}
		if ch.Err != nil {
			c.Error = ch.Err.Error()
		}
		out = append(out, c)
	}
	if err != nil {
		var done []string
		for _, c := range out {
			if c.Change != "unchanged" && c.Error == "" {
				done = append(done, c.Service+" "+c.Change)
			}
		}
		msg := err.Error()
		if len(done) > 0 {
			msg += fmt.Sprintf(" (done before: %s)", strings.Join(done, ", "))
		}
		return rpc.Errorf("ReloadError", "%s", msg)
	}
	return call.Finish(map[string]any{"changes": out})
}
