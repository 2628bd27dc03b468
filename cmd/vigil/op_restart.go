package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/supervisor"
)

func newRestartCmd() *cobra.Command {
	var (
		o      opOptions
		signal string
	)
	cmd := &cobra.Command{
		Use:   "restart [SERVICE|WORKER]",
		Short: "Restart the controller (SIGINT, as the original's restart), or one service's or worker's processes",
		Long: `With no argument, as the original's restart task: the supervisor sends
SIGINT (or --signal) to the controller, which stops gracefully; whatever
started it (systemd, Kubernetes) starts it again. Use vigil reload for a
blue/green restart of everything without stopping.

With SERVICE or WORKER, the controller restarts only those, one at a time,
each only after its replacement is ready, so the service never loses its
last ready worker.

` + workerHelp,
		Example: `  vigil restart web      # every worker of web, one at a time
  vigil restart web.2    # one worker
  vigil restart          # stop the controller gracefully (SIGINT)`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if _, err := supervisor.ParseSignal(signal); err != nil {
				return usageErr("--signal: %v", err)
			}
			if len(args) == 1 && cmd.Flags().Changed("signal") {
				return usageErr("--signal applies to a restart of the controller, not of %s", args[0])
			}
			usageDone(cmd)
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				return signalController(cmd.Context(), &o, strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(signal)), "SIG"), out)
			}
			return restartChildren(cmd.Context(), &o, args[0], out)
		},
	}
	cmd.ValidArgsFunction = completeWorkers(&o, 0, true, nil)
	o.addSocketFlag(cmd, 5*time.Minute, "how long to wait for the restart to finish")
	o.addOutputFlag(cmd)
	cmd.Flags().StringVar(&signal, "signal", "INT", "the signal for the controller (INT, TERM, HUP, USR1, USR2, QUIT)")
	return cmd
}

func newReloadCmd() *cobra.Command {
	var o opOptions
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Blue/green restart of every worker (SIGHUP to the controller, as the original's reload)",
		Long: `The supervisor sends SIGHUP to the controller, which re-reads its
configuration, starts a new set of workers beside the old ones, waits until
they are all ready, then stops the old ones. If the new configuration is
invalid or the new workers fail to become ready, the old ones keep running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			usageDone(cmd)
			return signalController(cmd.Context(), &o, "HUP", cmd.OutOrStdout())
		},
	}
	o.addSocketFlag(cmd, 5*time.Second, "how long to wait for the supervisor's answer")
	return cmd
}

// signalController asks the supervisor to signal its parent, the controller.
func signalController(parent context.Context, o *opOptions, sig string, out io.Writer) error {
	ctx, cancel := o.withTimeout(parent)
	defer cancel()
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Restart(ctx, sig); err != nil {
		return o.callError("restart", err)
	}
	what := map[string]string{
		"INT":  "it stops gracefully; whatever started it starts it again",
		"TERM": "it stops gracefully",
		"HUP":  "blue/green restart: new workers start, the old ones stop once all the new are ready (vigil status to follow)",
	}[sig]
	if what == "" {
		writeLine(out, "sent SIG%s to the controller", sig)
	} else {
		writeLine(out, "sent SIG%s to the controller: %s", sig, what)
	}
	return nil
}

// restartChildren asks the controller to restart a service or one worker.
func restartChildren(parent context.Context, o *opOptions, arg string, out io.Writer) error {
	ctx, cancel := o.withTimeout(parent)
	defer cancel()
	c, v, err := o.fetchStatus(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if v.Controller == nil {
		return failed(nil, "restarting %s needs the controller (`vigil run`), and none is registered with the supervisor at %s", arg, o.socket)
	}
	params, what, err := restartTarget(v, arg)
	if err != nil {
		return err
	}
	before := pidsByInstance(v, params)
	reply, err := o.forward(ctx, c, v.Controller, "restart_children", params, nil)
	if err != nil {
		return err
	}
	if o.output == "json" {
		_, err := out.Write(append(withoutID(reply), '\n'))
		return err
	}
	// Say which new pid replaced each old one, from the children before and
	// after (an old child may still be listed while it stops).
	st, err := callStatus(ctx, c)
	if err != nil {
		writeLine(out, "restarted %s: %s", what, reply)
		return nil
	}
	now := pidsByInstance(statusview.New(st), params)
	names := make([]string, 0, len(before))
	for name := range before {
		names = append(names, name)
	}
	slices.SortFunc(names, compareWorkerNames)
	var lines []string
	for _, name := range names {
		old, pid := before[name], now[name]
		switch {
		case pid == 0:
			lines = append(lines, fmt.Sprintf("  %s: pid %d -> none yet (see vigil status)", name, old))
		case pid != old:
			lines = append(lines, fmt.Sprintf("  %s: pid %d -> %d", name, old, pid))
		}
	}
	if len(lines) == 0 {
		writeLine(out, "%s: nothing was restarted (the controller answered %s)", what, withoutID(reply))
		return nil
	}
	writeLine(out, "restarted %s: %d %s, one at a time", what, len(lines), plural(len(lines), "worker", "workers"))
	for _, l := range lines {
		writeLine(out, "%s", l)
	}
	return nil
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

// restartTarget chooses restart_children's parameters for arg: a service,
// SERVICE.INSTANCE, or a worker by pid or connection id.
func restartTarget(v *statusview.View, arg string) (map[string]any, string, error) {
	services := make([]string, 0, len(v.Services))
	for _, ch := range v.Children {
		if !slices.Contains(services, ch.Service) {
			services = append(services, ch.Service)
		}
	}
	if slices.Contains(services, arg) {
		return map[string]any{"service": arg}, "service " + arg, nil
	}
	if svc, n, ok := statusview.ParseName(arg); ok && slices.Contains(services, svc) {
		var instances []string
		for _, ch := range v.Children {
			if ch.Service == svc {
				if ch.Instance == n {
					return map[string]any{"service": svc, "instance": n}, arg, nil
				}
				name := svc + "." + strconv.Itoa(ch.Instance)
				if !slices.Contains(instances, name) {
					instances = append(instances, name)
				}
			}
		}
		slices.SortFunc(instances, compareWorkerNames)
		return nil, "", notFound(nil, "no worker %s: service %s has %s", arg, svc, strings.Join(instances, ", "))
	}
	w, err := resolveWorker(v, arg)
	if err != nil {
		slices.Sort(services)
		if e := (*exitError)(nil); len(services) > 0 && errors.As(err, &e) {
			err = &exitError{code: e.code, err: fmt.Errorf("%w; the services are %s", e.err, strings.Join(services, ", "))}
		}
		return nil, "", err
	}
	if w.Controller || w.Service == "" || w.Instance < 0 {
		return nil, "", usageErr("%s is not one of the controller's workers: it cannot be restarted from here", w.Describe())
	}
	return map[string]any{"service": w.Service, "instance": w.Instance}, w.Describe(), nil
}

// pidsByInstance maps SERVICE.INSTANCE to its pid for the controller's
// children that restart_children's params select; of two children of one
// instance (the old one still stopping), the other one counts.
func pidsByInstance(v *statusview.View, params map[string]any) map[string]int {
	service, _ := params["service"].(string)
	instance, one := params["instance"].(int)
	m := make(map[string]int)
	for _, ch := range v.Children {
		if ch.Service != service || one && ch.Instance != instance {
			continue
		}
		name := ch.Service + "." + strconv.Itoa(ch.Instance)
		if _, seen := m[name]; seen && ch.State == "stopping" {
			continue
		}
		m[name] = ch.PID
	}
	return m
}
