package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/supervisor"
)

func newRestartCmd() *cobra.Command {
	var (
		o      opOptions
		signal string
		noWait bool
	)
	cmd := &cobra.Command{
		Use:   "restart [SERVICE|WORKER|all]",
		Short: "Rolling restart of every service, of one, or of one worker: each replaced only once its replacement is ready",
		Long: `Restart the workers one at a time, each only after its replacement is
ready, so that a service never loses its last ready worker (a service with
a port: each stopped before its replacement starts, the others serving).
With no argument, or all, every service in turn (vigil's own supervisor
left out; vigil restart supervisor replaces it). Exits 0 once every
replacement is ready, 1 with the reason when one fails.

--signal SIG does what the original's restart did instead: the supervisor
sends SIG to its parent, the controller, and the command returns at once
(vigil run: INT or TERM stops it, and everything with it; HUP reloads).

` + targetHelp,
		Example: `  vigil restart          # every service, one worker at a time
  vigil restart web      # every worker of web, one at a time
  vigil restart web.2    # one worker
  vigil restart --signal INT   # the original's restart: SIGINT to the controller`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			withSignal := cmd.Flags().Changed("signal")
			if withSignal {
				if _, err := supervisor.ParseSignal(signal); err != nil {
					return usageErr("--signal: %v", err)
				}
				if len(args) == 1 {
					return usageErr("--signal signals the controller: it takes no SERVICE or WORKER (%s)", args[0])
				}
				if noWait {
					return usageErr("--signal never waits: --no-wait is for a restart through the controller")
				}
			}
			usageDone(cmd)
			out := cmd.OutOrStdout()
			if withSignal {
				return signalController(cmd.Context(), &o, strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(signal)), "SIG"), out)
			}
			arg := "all"
			if len(args) == 1 {
				arg = args[0]
			}
			return restartChildren(cmd.Context(), &o, arg, noWait, out)
		},
	}
	cmd.ValidArgsFunction = completeWorkers(&o, 0, true, nil)
	o.addSocketFlag(cmd, lifecycleTimeout, "how long to wait for the restart to finish (0: no limit)")
	o.addOutputFlag(cmd)
	cmd.Flags().StringVar(&signal, "signal", "", "signal the controller instead, as the original's restart (INT, TERM, HUP, QUIT, USR1, USR2)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, noWaitHelp)
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
		"INT":  "it stops gracefully, and everything with it",
		"TERM": "it stops gracefully, and everything with it",
		"QUIT": "it stops gracefully, and everything with it",
		"HUP":  "it reloads its configuration (vigil run: by difference; vigil status to follow)",
		"USR2": "it reloads its configuration (vigil run: by difference; vigil status to follow)",
	}[sig]
	if what == "" {
		writeLine(out, "sent SIG%s to the controller", sig)
	} else {
		writeLine(out, "sent SIG%s to the controller: %s", sig, what)
	}
	return nil
}

// restartChildren asks the controller to restart every service ("all"), a
// service, or one worker, and says which new pid replaced each old one.
func restartChildren(parent context.Context, o *opOptions, arg string, noWait bool, out io.Writer) error {
	ctx, cancel := o.withTimeout(parent)
	defer cancel()
	c, v, err := o.fetchStatus(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	what := "restarting " + arg
	if arg == "all" {
		what = "a restart of every service"
	}
	if v.Controller == nil {
		return failed(nil, "%s needs the controller (`vigil run`), and none is registered with the supervisor at %s "+
			"(vigil restart --signal INT signals the supervisor's parent, as the original's restart)", what, o.socket)
	}
	t, err := resolveTarget(v, arg)
	if err != nil {
		return err
	}
	params := t.params
	if t.all() {
		params = map[string]any{} // restart_children with no service: every one
	}
	before := instances(v, t.services, t.instance)
	reply, accepted, err := o.callController(ctx, c, v, "restart_children", params, noWait)
	if err != nil {
		return err
	}
	if accepted {
		return underWay(out, o, "restart "+arg)
	}
	if o.output == "json" {
		_, err := out.Write(append(withoutID(reply), '\n'))
		return err
	}
	// Say which new pid replaced each old one, from the children before and
	// after (an old child may still be listed while it stops).
	st, err := callStatus(ctx, c)
	if err != nil {
		writeLine(out, "restarted %s: %s", t.what, withoutID(reply))
		return nil
	}
	now := instances(statusview.New(st), t.services, t.instance)
	var lines []string
	for _, name := range sortedNames(before) {
		old, cur := before[name].PID, now[name].PID
		switch {
		case old == 0:
			continue // not running: nothing to restart
		case cur == 0:
			lines = append(lines, fmt.Sprintf("  %s: pid %d -> none yet (see vigil status)", name, old))
		case cur != old:
			lines = append(lines, fmt.Sprintf("  %s: pid %d -> %d", name, old, cur))
		}
	}
	if len(lines) == 0 {
		writeLine(out, "%s: nothing was restarted (the controller answered %s)", t.what, withoutID(reply))
		return nil
	}
	writeLine(out, "restarted %s: %d %s, one at a time", t.what, len(lines), plural(len(lines), "worker", "workers"))
	for _, l := range lines {
		writeLine(out, "%s", l)
	}
	return nil
}

// pidsOf lists the pids of a service's instances, sorted, 0s left out.
func pidsOf(m map[string]statusview.Child, service string) []int {
	var pids []int
	for _, ch := range m {
		if ch.Service == service && ch.PID != 0 {
			pids = append(pids, ch.PID)
		}
	}
	slices.Sort(pids)
	return pids
}
