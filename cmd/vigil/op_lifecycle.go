package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// The lifecycle commands (start, stop, restart, scale, reload, shutdown)
// are operations of the controller, reached through the supervisor's
// forward. Each waits for the controller's final reply, which comes once
// the outcome is known, and exits 0 only when it happened.

// lifecycleTimeout is the lifecycle commands' default --timeout: long
// enough for graceful stops and slow starts.
const lifecycleTimeout = 5 * time.Minute

// noWaitGrace is how long --no-wait waits for the controller: an outcome
// that comes within it (an unknown service, a refusal, a quick stop) is
// reported as without --no-wait; otherwise the command returns once the
// supervisor has handed the call to the controller, which carries it out.
const noWaitGrace = time.Second

// targetHelp describes a lifecycle command's argument.
const targetHelp = `The argument is a service's name, all (every service, vigil's own
supervisor left out), or one worker: SERVICE.INSTANCE (instances count
from 0), a pid, or a connection id or a unique prefix of one.`

// noWaitHelp is --no-wait's help.
const noWaitHelp = "return once the controller has the request (up to 1s), without waiting for its outcome"

func newStartCmd() *cobra.Command {
	var (
		o      opOptions
		noWait bool
	)
	cmd := &cobra.Command{
		Use:   "start SERVICE|WORKER|all",
		Short: "Start a stopped or failed service (or one instance), and wait until it is ready",
		Long: `Start the instances that are stopped (vigil stop, autostart = false) or
failed (their start limit reached), their back-off and start limit
forgotten, and wait until each is ready. Exits 0 once they are, 1 with the
reason when one fails before it is ready (it is then retried as its
restart settings say). Instances already running are left alone.

` + targetHelp,
		Example: `  vigil start web        # every stopped or failed instance of web
  vigil start web.2      # one instance
  vigil start all`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			usageDone(cmd)
			return runLifecycle(cmd.Context(), &o, "start", args[0], nil, noWait, cmd.OutOrStdout(), printStarted)
		},
	}
	cmd.ValidArgsFunction = completeWorkers(&o, 0, true, nil)
	o.addSocketFlag(cmd, lifecycleTimeout, "how long to wait for the outcome (0: no limit)")
	o.addOutputFlag(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, noWaitHelp)
	return cmd
}

func newStopCmd() *cobra.Command {
	var (
		o      opOptions
		noWait bool
	)
	cmd := &cobra.Command{
		Use:   "stop SERVICE|WORKER|all",
		Short: "Stop a service (or one instance) gracefully; it stays stopped until vigil start",
		Long: `Stop the instances gracefully (the service's stop_signal, then SIGTERM, then
SIGKILL, graceful_stop apart) and wait until their processes are gone. They
stay stopped, across reloads, until vigil start; vigil status shows them
"stopped". The other services are not touched. vigil shutdown stops
everything, vigil run included.

` + targetHelp,
		Example: `  vigil stop web
  vigil stop web.1
  vigil stop all         # every service; the supervisor and vigil run stay`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if err := notTheSupervisor("stop", args[0]); err != nil {
				return err
			}
			usageDone(cmd)
			return runLifecycle(cmd.Context(), &o, "stop", args[0], nil, noWait, cmd.OutOrStdout(), printStopped)
		},
	}
	cmd.ValidArgsFunction = completeWorkers(&o, 0, true, nil)
	o.addSocketFlag(cmd, lifecycleTimeout, "how long to wait for the outcome (0: no limit)")
	o.addOutputFlag(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, noWaitHelp)
	return cmd
}

func newScaleCmd() *cobra.Command {
	var (
		o      opOptions
		noWait bool
	)
	cmd := &cobra.Command{
		Use:   "scale SERVICE N",
		Short: "Set a service's number of instances; the others are not touched",
		Long: `Start new instances up to N (and wait until they are ready), or stop the
instances from N on (and wait until they are gone). The instances below
both counts are not touched. N holds through reloads until the service's
settings in vigil.toml change.`,
		Example: `  vigil scale web 8
  vigil scale web 0      # every instance stopped; vigil scale web 2 to come back`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				return usageErr("N %q: expected a count, 0 or more", args[1])
			}
			if args[0] == "all" {
				return usageErr("scale takes one service, not all")
			}
			if err := notTheSupervisor("scale", args[0]); err != nil {
				return err
			}
			usageDone(cmd)
			return runLifecycle(cmd.Context(), &o, "scale", args[0], map[string]any{"count": n}, noWait, cmd.OutOrStdout(), printScaled)
		},
	}
	cmd.ValidArgsFunction = completeServices(&o)
	o.addSocketFlag(cmd, lifecycleTimeout, "how long to wait for the outcome (0: no limit)")
	o.addOutputFlag(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, noWaitHelp)
	return cmd
}

// notTheSupervisor refuses to stop or scale vigil's own supervisor: the
// operator's commands reach the controller through it, so nothing could
// start it again.
func notTheSupervisor(op, arg string) error {
	if svc, _, ok := statusview.ParseName(arg); arg == SupervisorService || ok && svc == SupervisorService {
		return usageErr("%s %s: the operator's commands reach vigil run through its supervisor, so nothing could start it again "+
			"(vigil restart supervisor replaces it; vigil shutdown stops everything)", op, arg)
	}
	return nil
}

// target is what a lifecycle command acts on.
type target struct {
	params   map[string]any // "service" and "instance", for the operation
	what     string         // how messages name it: "service web", "web.1", "web.1 (pid 42)", "every service"
	services []string       // the services it covers
	instance int            // -1: every instance
}

// all reports whether the target is every service.
func (t target) all() bool { return t.params["service"] == "all" }

// configuredServices are the services the controller reports: those with
// children, and those with statistics (a service scaled to 0 has none).
func configuredServices(v *statusview.View) []string {
	var names []string
	for _, ch := range v.Children {
		if !slices.Contains(names, ch.Service) {
			names = append(names, ch.Service)
		}
	}
	for _, s := range v.Services {
		if s.Stats != nil && s.Name != "" && !slices.Contains(names, s.Name) {
			names = append(names, s.Name)
		}
	}
	slices.Sort(names)
	return names
}

// resolveTarget chooses what arg names: all, a service, SERVICE.INSTANCE,
// or a worker by pid or connection id. An unknown name exits 4 with the
// candidates.
func resolveTarget(v *statusview.View, arg string) (target, error) {
	services := configuredServices(v)
	if arg == "all" {
		var every []string
		for _, s := range services {
			if s != SupervisorService {
				every = append(every, s)
			}
		}
		return target{params: map[string]any{"service": "all"}, what: "every service", services: every, instance: -1}, nil
	}
	if slices.Contains(services, arg) {
		return target{params: map[string]any{"service": arg}, what: "service " + arg, services: []string{arg}, instance: -1}, nil
	}
	if svc, n, ok := statusview.ParseName(arg); ok && slices.Contains(services, svc) {
		var instances []string
		for _, ch := range v.Children {
			if ch.Service != svc {
				continue
			}
			if ch.Instance == n {
				return target{params: map[string]any{"service": svc, "instance": n}, what: arg, services: []string{svc}, instance: n}, nil
			}
			if name := svc + "." + strconv.Itoa(ch.Instance); !slices.Contains(instances, name) {
				instances = append(instances, name)
			}
		}
		slices.SortFunc(instances, compareWorkerNames)
		if len(instances) == 0 {
			return target{}, notFound(nil, "no worker %s: service %s has no instance (vigil scale %s N)", arg, svc, svc)
		}
		return target{}, notFound(nil, "no worker %s: service %s has %s", arg, svc, strings.Join(instances, ", "))
	}
	w, err := resolveWorker(v, arg)
	if err != nil {
		if e := (*exitError)(nil); len(services) > 0 && errors.As(err, &e) {
			err = &exitError{code: e.code, err: fmt.Errorf("%w; the services are %s", e.err, strings.Join(services, ", "))}
		}
		return target{}, err
	}
	if w.Controller || w.Service == "" || w.Instance < 0 || !slices.Contains(services, w.Service) {
		return target{}, usageErr("%s is not one of the controller's workers: vigil run does not manage it", w.Describe())
	}
	return target{params: map[string]any{"service": w.Service, "instance": w.Instance}, what: w.Describe(),
		services: []string{w.Service}, instance: w.Instance}, nil
}

// compareWorkerNames orders "web.2" before "web.10".
func compareWorkerNames(a, b string) int {
	sa, na, _ := statusview.ParseName(a)
	sb, nb, _ := statusview.ParseName(b)
	if c := strings.Compare(sa, sb); c != 0 {
		return c
	}
	return na - nb
}

// instances maps SERVICE.INSTANCE to its child, for the instances of
// services (every instance, or the one given); of two children of one
// instance (the old one still stopping), the other one counts.
func instances(v *statusview.View, services []string, instance int) map[string]statusview.Child {
	m := make(map[string]statusview.Child)
	for _, ch := range v.Children {
		if !slices.Contains(services, ch.Service) || instance >= 0 && ch.Instance != instance {
			continue
		}
		name := ch.Service + "." + strconv.Itoa(ch.Instance)
		if _, seen := m[name]; seen && ch.State == "stopping" {
			continue
		}
		m[name] = ch
	}
	return m
}

// sortedNames returns m's keys, web.2 before web.10.
func sortedNames[V any](m map[string]V) []string {
	names := slices.Collect(maps.Keys(m))
	slices.SortFunc(names, compareWorkerNames)
	return names
}

// outcome is what a lifecycle command prints once the operation is done:
// the target, the children before and after (after is nil when the status
// could not be had again), and the controller's reply.
type outcome struct {
	target        target
	before, after map[string]statusview.Child
	reply         *rpc.Message
	count         int // scale's N
}

// runLifecycle resolves arg, calls op on the controller with the target
// (and extra parameters), and prints the outcome with print.
func runLifecycle(parent context.Context, o *opOptions, op, arg string, extra map[string]any, noWait bool, out io.Writer, print func(io.Writer, *outcome)) error {
	ctx, cancel := o.withTimeout(parent)
	defer cancel()
	c, v, err := o.fetchStatus(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if v.Controller == nil {
		return noController(o, op+" "+arg)
	}
	t, err := resolveTarget(v, arg)
	if err != nil {
		return err
	}
	if op == "scale" && t.instance >= 0 {
		return usageErr("scale takes a service, not one of its workers (%s)", t.what)
	}
	params := maps.Clone(t.params)
	maps.Copy(params, extra)
	res := &outcome{target: t, before: instances(v, t.services, t.instance)}
	if n, ok := extra["count"].(int); ok {
		res.count = n
	}
	reply, accepted, err := o.callController(ctx, c, v, op, params, noWait)
	if err != nil {
		return err
	}
	if accepted {
		return underWay(out, o, op+" "+arg)
	}
	if o.output == "json" {
		_, err := out.Write(append(withoutID(reply), '\n'))
		return err
	}
	res.reply = reply
	if st, err := callStatus(ctx, c); err == nil {
		res.after = instances(statusview.New(st), t.services, t.instance)
	}
	print(out, res)
	return nil
}

// noController is the error of a lifecycle command when no controller is
// registered with the supervisor.
func noController(o *opOptions, what string) error {
	return failed(nil, "%s needs the controller (`vigil run`), and none is registered with the supervisor at %s", what, o.socket)
}

// underWay says that a --no-wait command's operation was handed to the
// controller.
func underWay(out io.Writer, o *opOptions, what string) error {
	if o.output == "json" {
		_, err := fmt.Fprintf(out, "{\"accepted\":true,\"operation\":%q}\n", what)
		return err
	}
	writeLine(out, "%s: under way (the controller has it; vigil status to follow)", what)
	return nil
}

// callController calls op on the controller through the supervisor and
// waits for its final reply. With noWait, it waits at most noWaitGrace:
// accepted is then true when no outcome came by then, the supervisor
// having handed the call to the controller, which carries on with it (the
// supervisor writes the call to the controller before its own timeout
// starts, and the protocol has no way to take a call back).
func (o *opOptions) callController(ctx context.Context, c *supervisor.Client, v *statusview.View, op string, params map[string]any, noWait bool) (reply *rpc.Message, accepted bool, err error) {
	if v.Controller == nil {
		return nil, false, noController(o, op)
	}
	operation := map[string]any{"do": op}
	maps.Copy(operation, params)
	fwd := map[string]any{"connection_id": v.Controller.ConnID, "operation": operation}
	if noWait {
		fwd["timeout"] = noWaitGrace.Seconds()
	} else if dl, ok := ctx.Deadline(); ok {
		fwd["timeout"] = max(time.Until(dl).Seconds(), 0.001)
	}
	reply, err = c.Conn().Call(ctx, "forward", fwd, nil)
	if err == nil {
		return reply, false, nil
	}
	var remote *rpc.RemoteError
	if errors.As(err, &remote) {
		timedOut := remote.Class == "" && strings.HasPrefix(remote.Message, "Forwarded ") && strings.Contains(remote.Message, "timed out")
		switch {
		case noWait && timedOut:
			return nil, true, nil
		case timedOut:
			return nil, false, o.noOutcome(op, err)
		case remote.Class == "NoMethodError":
			return nil, false, failed(err, "the controller (%s) does not serve %s: it is not vigil run, or an older one%s", v.Controller.Describe(), op, notServedHint(op))
		case remote.Class == "LifecycleError", remote.Class == "ReloadError", remote.Class == "RestartError", remote.Class == "ArgumentError":
			msg := remote.Message
			if !strings.HasPrefix(msg, op) {
				msg = op + ": " + msg
			}
			return remote.Reply, false, failed(err, "%s", msg)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, false, o.noOutcome(op, err)
	}
	return replyOf(err), false, o.forwardError(v.Controller, op, err, 0)
}

// notServedHint says what to do when the controller does not serve op.
func notServedHint(op string) string {
	switch op {
	case "reload":
		return " (vigil reload --signal sends it SIGHUP instead, as the original's reload)"
	case "restart_children":
		return " (vigil restart --signal INT signals it instead, as the original's restart)"
	case "shutdown":
		return " (vigil restart --signal TERM signals it instead)"
	}
	return ""
}

// noOutcome is the error of a call whose outcome did not come in time.
func (o *opOptions) noOutcome(op string, err error) error {
	return failed(err, "%s: no outcome after %v (--timeout to wait longer); the controller carries on with it: vigil status to follow", op, o.timeout)
}
