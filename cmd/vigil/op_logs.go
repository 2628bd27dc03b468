package main

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/control"
	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/logs"
	"github.com/vigild/vigil/rpc"
)

// logsFollowFor is how long each call of vigil logs -f lasts before the
// next one resumes it (see package control).
const logsFollowFor = 25 * time.Second

type logsOptions struct {
	opOptions
	follow   bool
	n        int
	previous bool
	stream   string
	since    string
	format   string
}

func newLogsCmd() *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs [SERVICE|WORKER]",
		Short: "Show the last lines the workers wrote, or follow them",
		Long: `Show the lines a service's workers, one worker, or every worker wrote to
stdout and stderr, as the controller keeps them (the last lines of each
stream of each worker's process, and of the process before it), interleaved
in the order the controller read them: "web.1 | line", each worker in a
colour of its own on a terminal; --output json writes one JSON object per
line: {"time","service","instance","pid","stream","line"}.

-f follows: after the kept lines, the new ones as they come, across
restarts, until interrupted. --previous shows the process before the
current one of each worker: why did it crash?

` + workerHelp,
		Example: `  vigil logs                      # the last 100 lines of every worker
  vigil logs web -f               # follow web's workers
  vigil logs web.1 --previous     # the last lines of web.1's previous process
  vigil logs web --stream stderr --since 10m --output json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			params, err := o.params(time.Now())
			if err != nil {
				return err
			}
			usageDone(cmd)
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runLogs(ctx, &o, target, params, cmd.OutOrStdout())
		},
	}
	cmd.ValidArgsFunction = completeWorkers(&o.opOptions, 0, true, nil)
	o.addSocketFlag(cmd, 10*time.Second, "how long to wait for each answer (with -f: beyond each call's "+logsFollowFor.String()+")")
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "after the kept lines, print new ones as they come, until interrupted")
	f.IntVarP(&o.n, "lines", "n", 100, "the last N lines (0: every line kept)")
	f.BoolVar(&o.previous, "previous", false, "the lines of each worker's previous process")
	f.StringVar(&o.stream, "stream", "", "only stdout or only stderr")
	f.StringVar(&o.since, "since", "", "only lines newer than this: a duration (5m, 1h30m) or an RFC 3339 time")
	f.StringVar(&o.format, "output", "text", "output format: text or json")
	return cmd
}

// params checks the flags and returns the logs operation's parameters
// (without the target); its errors are usage errors.
func (o *logsOptions) params(now time.Time) (map[string]any, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.format != "text" && o.format != "json" {
		return nil, usageErr("--output %q: expected text or json", o.format)
	}
	if o.n < 0 {
		return nil, usageErr("--lines %d: must not be negative", o.n)
	}
	if o.previous && o.follow {
		return nil, usageErr("--previous and --follow together: the previous process has exited, there is nothing to follow")
	}
	p := map[string]any{}
	if o.n > 0 {
		p["n"] = o.n
	}
	if o.stream != "" {
		if _, err := logs.ParseStream(o.stream); err != nil {
			return nil, usageErr("--stream: %v", err)
		}
		p["stream"] = o.stream
	}
	if o.since != "" {
		since, err := parseSince(o.since, now)
		if err != nil {
			return nil, usageErr("--since %q: %v", o.since, err)
		}
		p["since"] = since.UTC().Format(time.RFC3339Nano)
	}
	if o.previous {
		p["previous"] = true
	}
	return p, nil
}

// parseSince reads a duration before now or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("a duration must not be negative")
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("expected a duration (5m, 1h30m) or an RFC 3339 time (2025-01-02T15:04:05Z)")
	}
	return t, nil
}

// runLogs asks the controller for the lines and prints them; with -f it
// goes on, call after call, until ctx ends.
func runLogs(ctx context.Context, o *logsOptions, target string, params map[string]any, out io.Writer) error {
	sctx, cancel := o.withTimeout(ctx)
	c, v, err := o.fetchStatus(sctx)
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	if v.Controller == nil {
		return failed(nil, "vigil logs needs the controller (`vigil run`), and none is registered with the supervisor at %s", o.socket)
	}
	what := "every worker"
	if target != "" {
		tp, name, err := logsTarget(v, target)
		if err != nil {
			return err
		}
		for k, val := range tp {
			params[k] = val
		}
		what = name
	}
	p := &logsPrinter{w: out, json: o.format == "json", colour: o.format == "text" && useColour(out)}
	if !o.follow {
		cctx, cancel := o.withTimeout(ctx)
		defer cancel()
		_, err := o.forward(cctx, c, v.Controller, "logs", params, p.reply)
		if err != nil && ctx.Err() != nil {
			return nil // interrupted
		}
		return err
	}
	params["follow"] = true
	params["follow_for"] = logsFollowFor.Seconds()
	for {
		cctx, cancel := context.WithTimeout(ctx, logsFollowFor+o.timeout)
		final, err := o.forward(cctx, c, v.Controller, "logs", params, p.reply)
		cancel()
		if ctx.Err() != nil {
			return nil // interrupted: the normal end of a follow
		}
		if err != nil {
			return fmt.Errorf("following %s: %w", what, err)
		}
		var f struct {
			Cursor uint64 `json:"cursor"`
		}
		if err := final.Decode(&f); err != nil {
			return failed(err, "following %s: the controller's reply: %v", what, err)
		}
		// The next call goes on from the last line printed.
		params["after"] = f.Cursor
		delete(params, "n")
		delete(params, "since")
	}
}

// logsTarget chooses the logs operation's parameters for arg: a service,
// SERVICE.INSTANCE, or a worker by pid or connection id.
func logsTarget(v *statusview.View, arg string) (map[string]any, string, error) {
	var services []string
	for _, ch := range v.Children {
		if !slices.Contains(services, ch.Service) {
			services = append(services, ch.Service)
		}
	}
	if slices.Contains(services, arg) {
		return map[string]any{"service": arg}, "service " + arg, nil
	}
	if svc, n, ok := statusview.ParseName(arg); ok && slices.Contains(services, svc) {
		return map[string]any{"service": svc, "instance": n}, arg, nil
	}
	w, err := resolveWorker(v, arg)
	if err != nil {
		slices.Sort(services)
		if len(services) > 0 {
			err = usageErr("%v; the services are %s", err, strings.Join(services, ", "))
		}
		return nil, "", err
	}
	if w.Controller || w.Service == "" || w.Instance < 0 {
		return nil, "", usageErr("%s is not one of the controller's workers: the controller keeps no lines of it", w.Describe())
	}
	return map[string]any{"service": w.Service, "instance": w.Instance}, w.Describe(), nil
}

// logsPrinter prints the lines of the logs operation's replies.
type logsPrinter struct {
	w      io.Writer
	json   bool
	colour bool
	buf    []byte
}

// workerColours are the colours of the workers' names on a terminal.
var workerColours = []string{"\x1b[36m", "\x1b[35m", "\x1b[33m", "\x1b[32m", "\x1b[34m", "\x1b[91m", "\x1b[96m", "\x1b[95m"}

// colourOf gives a worker the same colour every time.
func colourOf(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	return workerColours[h.Sum32()%uint32(len(workerColours))]
}

func (p *logsPrinter) reply(m *rpc.Message) error {
	var r struct {
		Lines []json.RawMessage `json:"lines"`
		Lost  uint64            `json:"lost"`
	}
	if err := m.Decode(&r); err != nil {
		return fmt.Errorf("the controller's reply: %w", err)
	}
	p.buf = p.buf[:0]
	for _, raw := range r.Lines {
		if p.json {
			p.buf = append(append(p.buf, raw...), '\n')
			continue
		}
		var l control.LogLine
		if err := json.Unmarshal(raw, &l); err != nil {
			return fmt.Errorf("the controller's reply: %w", err)
		}
		name := fmt.Sprintf("%s.%d", l.Service, l.Instance)
		if p.colour {
			p.buf = append(p.buf, colourOf(name)...)
			p.buf = append(p.buf, name...)
			p.buf = append(p.buf, ansiReset...)
		} else {
			p.buf = append(p.buf, name...)
		}
		p.buf = append(p.buf, " | "...)
		p.buf = append(p.buf, l.Line...)
		p.buf = append(p.buf, '\n')
	}
	if r.Lost > 0 {
		if p.json {
			p.buf = fmt.Appendf(p.buf, "{\"lost\":%d}\n", r.Lost)
		} else {
			p.buf = fmt.Appendf(p.buf, "vigil: %d %s lost here: this command did not read them fast enough\n", r.Lost, plural(int(r.Lost), "line", "lines"))
		}
	}
	if len(p.buf) == 0 {
		return nil
	}
	_, err := p.w.Write(p.buf)
	return err
}
