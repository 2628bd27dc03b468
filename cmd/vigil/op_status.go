package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

func newStatusCmd() *cobra.Command {
	var (
		o     opOptions
		watch bool
	)
	cmd := &cobra.Command{
		Use:   "status [SERVICE...]",
		Short: "Show every worker: state, uptime, CPU, memory, restarts",
		Long: `Show one row per worker (service, instance, pid, connection, state, uptime,
CPU %, private and resident memory, restarts, last exit), then a line per
service with its totals and the memory monitor's kills. With SERVICE, only
that service's workers (an unknown one exits 4).

--output json prints the same rows as a JSON array, one object per worker
with a stable schema for scripts (service, instance, name, pid,
connection_id, state, status, uptime, restarts, last_exit, last_error,
next_restart, restart_in, cpu, memory.private, memory.resident; null when
unknown). --output raw prints the supervisor's replies as they came.
--watch redraws every second until interrupted.`,
		Example: `  vigil status
  vigil status web
  vigil status --output json | jq '.[] | select(.state != "ready") | .name'`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if len(args) > 0 && o.output == "raw" {
				return usageErr("--output raw prints the supervisor's replies whole: SERVICE applies to table and json")
			}
			usageDone(cmd)
			if watch {
				return runWatch(cmd.Context(), &o, args, cmd.OutOrStdout())
			}
			// One answer, then exit: its garbage (a few MiB with 1,000
			// workers) is not worth collecting, unless it grows large.
			debug.SetGCPercent(-1)
			debug.SetMemoryLimit(256 << 20)
			ctx, cancel := o.withTimeout(cmd.Context())
			defer cancel()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := callStatus(ctx, c)
			if err != nil {
				return o.callError("status", err)
			}
			out := cmd.OutOrStdout()
			return writeStatus(out, o.output, st, args, useColour(out), time.Now())
		},
	}
	cmd.ValidArgsFunction = completeServices(&o)
	o.addSocketFlag(cmd, 5*time.Second, "how long to wait for the supervisor's answer")
	o.addOutputFlag(cmd, "table", "json", "raw")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "redraw every second until interrupted")
	return cmd
}

// writeRawReplies prints the status replies as a JSON array, one reply a
// line, without their ids.
func writeRawReplies(w io.Writer, st *supervisor.Status) error {
	var b bytes.Buffer
	b.WriteString("[\n")
	for _, p := range st.Parts {
		b.Write(withoutID(p))
		b.WriteString(",\n")
	}
	b.Write(withoutID(st.Final))
	b.WriteString("\n]\n")
	_, err := w.Write(b.Bytes())
	return err
}

// withoutID returns a message's JSON without its "id" field, other fields
// as they came.
func withoutID(m *rpc.Message) []byte {
	b := make([]byte, 0, len(m.Bytes()))
	b = append(b, '{')
	first := true
	for _, k := range m.Keys() {
		if k == "id" {
			continue
		}
		v, _ := m.Get(k)
		if !first {
			b = append(b, ',')
		}
		first = false
		b = strconv.AppendQuote(b, k)
		b = append(b, ':')
		b = append(b, v...)
	}
	return append(b, '}')
}

// statusHeaders are the table's columns.
var statusHeaders = []string{"SERVICE", "#", "PID", "CONNECTION", "STATE", "UPTIME", "CPU", "PRIVATE", "RESIDENT", "RESTARTS", "LAST EXIT"}

// renderStatus writes the status table, the services' lines and warnings,
// as they stand at now (a backing-off worker's countdown).
func renderStatus(w io.Writer, v *statusview.View, colour bool, now time.Time) error {
	t := &table{
		headers: statusHeaders,
		// Minimum widths keep the layout still as the values change.
		minW:  []int{0, 0, 7, 10, 11, 6, 6, 10, 10, 0, 0},
		right: []bool{false, true, true, false, false, true, true, true, true, true, false},
	}
	for _, wk := range v.Workers {
		inst, pid, restarts, conn, last := "-", "-", "-", "-", "-"
		if wk.Instance >= 0 {
			inst = strconv.Itoa(wk.Instance)
		}
		if wk.PID > 0 {
			pid = strconv.Itoa(wk.PID)
		}
		if wk.Restarts >= 0 {
			restarts = strconv.Itoa(wk.Restarts)
		}
		if wk.ConnID != "" {
			conn = statusview.ShortID(wk.ConnID)
		}
		if wk.LastExit != "" {
			last = wk.LastExit
		}
		service := wk.Service
		if service == "" {
			service = "-"
		}
		cells := []string{service, inst, pid, conn, wk.StateText(now), statusview.FormatUptime(wk.Uptime), statusview.FormatCPU(wk.CPU),
			statusview.FormatSize(wk.Private), statusview.FormatSize(wk.Resident), restarts, last}
		colours := make([]string, len(cells))
		colours[4] = stateColour(wk.State)
		if wk.LastExit != "" {
			colours[10] = ansiDim
		}
		t.add(cells, colours)
	}
	var b bytes.Buffer
	if len(v.Workers) == 0 {
		b.WriteString("no workers\n")
	} else if err := t.write(&b, colour); err != nil {
		return err
	}
	b.WriteByte('\n')
	if v.Controller == nil {
		b.WriteString("no controller registered: the states are the supervisor's view only\n")
	}
	for _, s := range v.Services {
		name := s.Name
		if name == "" {
			name = "(unnamed)"
		}
		fmt.Fprintf(&b, "%s: %d %s (%d ready), CPU %s, private %s, resident %s",
			name, s.Workers, plural(s.Workers, "worker", "workers"), s.Ready,
			statusview.FormatCPU(s.CPU), statusview.FormatSize(s.Private), statusview.FormatSize(s.Resident))
		if s.Stats != nil {
			fmt.Fprintf(&b, ", spawns %d, restarts %d, failures %d", s.Stats.Spawns, s.Stats.Restarts, s.Stats.Failures)
			if n := s.Stats.OutputDroppedLines; n > 0 {
				fmt.Fprintf(&b, ", output lines dropped %d", n)
			}
		} else {
			fmt.Fprintf(&b, ", restarts %d", s.Restarts)
		}
		if s.Kills != nil {
			fmt.Fprintf(&b, ", memory kills %s", formatKills(s.Kills))
		}
		b.WriteByte('\n')
	}
	if v.Kills != nil {
		fmt.Fprintf(&b, "memory monitor kills: %s\n", formatKills(v.Kills))
	}
	b.WriteString(failedLines(v))
	for _, warn := range v.Warnings {
		if colour {
			fmt.Fprintf(&b, "%swarning: %s%s\n", ansiRed, warn, ansiReset)
		} else {
			fmt.Fprintf(&b, "warning: %s\n", warn)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// unverifiedLine says which registrations the supervisor could not verify
// (their "verified" is false): it did not know who made them, so its
// monitors leave their processes alone. "" when there are none.
func unverifiedLine(v *statusview.View) string {
	var ids []string
	for _, w := range v.Connections {
		if w.Unverified {
			ids = append(ids, statusview.ShortID(w.ConnID))
		}
	}
	if len(ids) == 0 {
		return ""
	}
	return fmt.Sprintf("%d %s unverified (%s): the supervisor cannot tell which process made %s "+
		"(a peer outside its pid namespace), so its monitors leave %s process alone\n",
		len(ids), plural(len(ids), "registration", "registrations"), listShort(ids),
		plural(len(ids), "it", "them"), plural(len(ids), "its", "their"))
}

// formatKills formats kills by reason: "0", or "3 (maximum_size_limit 2, increase_limit 1)".
func formatKills(k map[string]int) string {
	total := 0
	reasons := make([]string, 0, len(k))
	for r, n := range k {
		total += n
		if n > 0 {
			reasons = append(reasons, r)
		}
	}
	if total == 0 {
		return "0"
	}
	slices.Sort(reasons)
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s %d", r, k[r])
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// watchInterval is how often --watch redraws.
const watchInterval = time.Second

// runWatch redraws the status every second until SIGINT or SIGTERM. It
// keeps one connection, and dials again when the supervisor goes away.
func runWatch(parent context.Context, o *opOptions, services []string, w io.Writer) error {
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	term := writerIsTerminal(w)
	colour := useColour(w)
	var c *supervisor.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	for {
		var frame bytes.Buffer
		if o.output == "table" { // JSON frames stay parseable, one array each
			fmt.Fprintf(&frame, "vigil status --socket %s, every %v: %s\n\n", o.socket, watchInterval, time.Now().Format(time.TimeOnly))
		}
		err := func() error {
			cctx, cancel := o.withTimeout(ctx)
			defer cancel()
			if c == nil {
				var err error
				if c, err = o.dial(cctx); err != nil {
					return err
				}
			}
			st, err := callStatus(cctx, c)
			if err != nil {
				c.Close()
				c = nil
				return o.callError("status", err)
			}
			return writeStatus(&frame, o.output, st, services, colour, time.Now())
		}()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			fmt.Fprintf(&frame, "%v\n(retrying every %v)\n", err, watchInterval)
		}
		if term {
			io.WriteString(w, "\x1b[H\x1b[2J")
		} else {
			frame.WriteByte('\n')
		}
		if _, err := w.Write(frame.Bytes()); err != nil {
			return failed(err, "status --watch: %v", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
