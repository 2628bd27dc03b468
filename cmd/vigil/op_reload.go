package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/internal/statusview"
)

func newReloadCmd() *cobra.Command {
	var (
		o              opOptions
		signal, noWait bool
	)
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Re-read vigil.toml and apply it by difference; wait, and say what changed per service",
		Long: `vigil run reads its configuration anew and applies it by difference:
services added start, removed ones stop, those whose settings changed are
replaced (blue/green, or rolling with reload = "rolling" and for a service
with a port), a changed count scales, unchanged services are not touched.
A service stopped with vigil stop takes its new settings and stays stopped.
Changes to [logs] apply to the processes started from then on.

The command waits until it is done and prints what happened to each
service. It exits 1 with the reason when the configuration is refused (the
key and line; nothing is changed) or a new service or replacement fails
(its old processes keep running; what was done before is said).

--signal does what the original's reload did instead: the supervisor sends
SIGHUP to the controller and the command returns at once (vigil run
reloads as above, and logs the outcome).`,
		Example: `  vigil reload
  vigil reload -c /etc/vigil/vigil.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if signal && noWait {
				return usageErr("--signal never waits: --no-wait is for a reload through the controller")
			}
			usageDone(cmd)
			if signal {
				return signalController(cmd.Context(), &o, "HUP", cmd.OutOrStdout())
			}
			return reload(cmd.Context(), &o, noWait, cmd.OutOrStdout())
		},
	}
	o.addSocketFlag(cmd, lifecycleTimeout, "how long to wait for the reload to finish (0: no limit)")
	o.addOutputFlag(cmd)
	cmd.Flags().BoolVar(&signal, "signal", false, "send SIGHUP to the controller instead and return at once, as the original's reload")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, noWaitHelp)
	return cmd
}

// change is one service's line of the reload operation's reply.
type change struct {
	Service string `json:"service"`
	Change  string `json:"change"` // started, replaced, stopped, unchanged
	Error   string `json:"error"`
}

// reload asks the controller to reload and prints what changed.
func reload(parent context.Context, o *opOptions, noWait bool, out io.Writer) error {
	ctx, cancel := o.withTimeout(parent)
	defer cancel()
	c, v, err := o.fetchStatus(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if v.Controller == nil {
		return failed(nil, "reload needs the controller (`vigil run`), and none is registered with the supervisor at %s "+
			"(vigil reload --signal sends SIGHUP to the supervisor's parent, as the original's reload)", o.socket)
	}
	before := instances(v, configuredServices(v), -1)
	reply, accepted, err := o.callController(ctx, c, v, "reload", nil, noWait)
	if err != nil {
		return err
	}
	if accepted {
		return underWay(out, o, "reload")
	}
	if o.output == "json" {
		_, err := out.Write(append(withoutID(reply), '\n'))
		return err
	}
	var p struct {
		Changes []change `json:"changes"`
	}
	if err := reply.Decode(&p); err != nil {
		writeLine(out, "reload done: %s", withoutID(reply))
		return nil
	}
	var after map[string]statusview.Child
	if st, err := callStatus(ctx, c); err == nil {
		nv := statusview.New(st)
		after = instances(nv, configuredServices(nv), -1)
	}
	writeChanges(out, p.Changes, before, after)
	return nil
}

// writeChanges prints a reload's changes: a count, a line per service
// that changed (with its pids before and after when known), and the
// unchanged ones on one line.
func writeChanges(out io.Writer, changes []change, before, after map[string]statusview.Child) {
	counts := map[string]int{}
	var order []string
	var unchanged, lines []string
	for _, ch := range changes {
		if counts[ch.Change] == 0 {
			order = append(order, ch.Change)
		}
		counts[ch.Change]++
		if ch.Change == "unchanged" {
			unchanged = append(unchanged, ch.Service)
			continue
		}
		line := fmt.Sprintf("  %s: %s", ch.Service, ch.Change)
		old, cur := pidsOf(before, ch.Service), pidsOf(after, ch.Service)
		switch {
		case after == nil:
		case (ch.Change == "replaced" || ch.Change == "scaled") && len(old) > 0:
			line += fmt.Sprintf(", %s -> %s", pidList(old), strings.TrimPrefix(strings.TrimPrefix(pidList(cur), "pids "), "pid "))
		case ch.Change == "started" && len(cur) > 0:
			line += ", " + pidList(cur)
		case ch.Change == "stopped" && len(old) > 0:
			line += ", " + pidList(old)
		}
		if ch.Error != "" {
			line += ": " + ch.Error
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		writeLine(out, "reload done: nothing changed (%s unchanged)", serviceList(unchanged))
		return
	}
	slices.SortStableFunc(order, func(a, b string) int { return changeRank(a) - changeRank(b) })
	var summary []string
	for _, c := range order {
		summary = append(summary, fmt.Sprintf("%d %s", counts[c], c))
	}
	writeLine(out, "reload done: %s", strings.Join(summary, ", "))
	for _, l := range lines {
		writeLine(out, "%s", l)
	}
	if len(unchanged) > 0 {
		writeLine(out, "  unchanged: %s", serviceList(unchanged))
	}
}

// listedServices is the most services a reload's report names on a line;
// beyond, it counts them (a configuration of hundreds of services).
const listedServices = 10

// serviceList names services, or counts them when there are more than
// listedServices.
func serviceList(services []string) string {
	if len(services) > listedServices {
		return fmt.Sprintf("%d services", len(services))
	}
	return strings.Join(services, ", ")
}

// changeRank orders a reload's summary: what started, was replaced,
// stopped, then what did not change.
func changeRank(change string) int {
	switch change {
	case "started":
		return 0
	case "replaced":
		return 1
	case "scaled":
		return 2
	case "stopped":
		return 2
	case "unchanged":
		return 4
	}
	return 3
}
