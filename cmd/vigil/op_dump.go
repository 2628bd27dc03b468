package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
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

// dumpKind is one kind of `vigil dump`.
type dumpKind struct {
	name     string
	op       string         // the worker's operation
	params   map[string]any // its fixed parameters
	duration time.Duration  // default --duration; 0: it takes none
	binary   bool           // a file by default (pprof or trace)
	ext      string         // the default file's extension
	open     string         // the command that opens the file ("go tool pprof")
	what     string         // for messages: "heap profile"
}

var dumpKinds = []dumpKind{
	{name: "goroutines", op: "thread_dump", params: map[string]any{"format": "text"}, what: "goroutine dump"},
	{name: "heap", op: "memory_dump", params: map[string]any{"format": "pprof"}, binary: true, ext: ".pprof", open: "go tool pprof", what: "heap profile"},
	{name: "allocs", op: "memory_dump", params: map[string]any{"format": "pprof"}, binary: true, ext: ".pprof", open: "go tool pprof -sample_index=alloc_space", what: "allocations profile"},
	{name: "cpu", op: "cpu_profile", duration: 10 * time.Second, binary: true, ext: ".pprof", open: "go tool pprof", what: "CPU profile"},
	{name: "trace", op: "trace", duration: 5 * time.Second, binary: true, ext: ".trace", open: "go tool trace", what: "execution trace"},
	{name: "gc", op: "garbage_profile_stop", duration: 10 * time.Second, what: "garbage collector profile"},
	{name: "metrics", op: "runtime_metrics", what: "runtime metrics"},
	// "stream": vigil's form of the report (see worker.Diagnostics).
	{name: "sample", op: "memory_sample", params: map[string]any{"stream": true}, duration: 10 * time.Second, what: "memory sample"},
}

func dumpKindNames() []string {
	names := make([]string, len(dumpKinds))
	for i, k := range dumpKinds {
		names[i] = k.name
	}
	return names
}

func findDumpKind(name string) (dumpKind, bool) {
	for _, k := range dumpKinds {
		if k.name == name {
			return k, true
		}
	}
	return dumpKind{}, false
}

func newDumpCmd() *cobra.Command {
	var (
		o        opOptions
		duration time.Duration
		file     string
		dir      string
		gc       bool
	)
	cmd := &cobra.Command{
		Use:   "dump goroutines|heap|allocs|cpu|trace|gc|metrics|sample WORKER",
		Short: "Take a goroutine dump, a profile, a trace or the runtime metrics of a Go worker",
		Long: `Ask a Go worker (one built with vigil's worker library) for a diagnostic:

  goroutines  every goroutine's stack, as text
  heap        a heap profile (pprof; --gc collects garbage first)
  allocs      the same profile, opened on the allocations' sample
  cpu         a CPU profile over --duration (default 10s)
  trace       an execution trace over --duration (default 5s)
  gc          the garbage collector's activity over --duration (default 10s)
  metrics     every runtime/metrics value
  sample      what was allocated over --duration (default 10s) and is still
              live after it, by place in the source

Profiles and traces are written to a file: -o FILE, or by default
SERVICE.INSTANCE-KIND-TIME.pprof in the dump directory (--dir, else
$` + EnvDumpDir + `, else ` + defaultDumpDir + ` here), followed by the command that opens
them. The others print on standard output unless -o is given. The ones that
take a while say on standard error what they wait for.

The original's workers (and any that do not register "outputs" with
"inline") are asked to write the dump into the dump directory themselves,
when they run on this host, and vigil reads it from there: the original's
memory_dump refuses to answer inline.

` + workerHelp,
		Example: `  vigil dump goroutines web.0
  vigil dump heap 12345 -o heap.pprof
  vigil dump cpu web.1 --duration 30s
  vigil dump heap ruby-worker-0    # the original's worker: its own format`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("expected KIND and WORKER (KIND: %s), got %d arguments", strings.Join(dumpKindNames(), ", "), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			kind, ok := findDumpKind(args[0])
			if !ok {
				return usageErr("unknown dump %q: expected one of %s", args[0], strings.Join(dumpKindNames(), ", "))
			}
			if cmd.Flags().Changed("duration") {
				if kind.duration == 0 {
					return usageErr("--duration applies to cpu, trace, gc and sample, not to %s", kind.name)
				}
				if duration <= 0 {
					return usageErr("--duration %v: must be positive", duration)
				}
				kind.duration = duration
			}
			if gc && kind.name != "heap" {
				return usageErr("--gc applies to heap only")
			}
			if dir == "" {
				return usageErr("--dir: the path must not be empty")
			}
			usageDone(cmd)
			req := dumpRequest{kind: kind, arg: args[1], file: file, dir: dir, gc: gc, durationSet: cmd.Flags().Changed("duration")}
			return runDump(cmd.Context(), &o, req, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.ValidArgsFunction = completeWorkers(&o, 1, false, dumpKindNames())
	o.addSocketFlag(cmd, 30*time.Second, "how long to wait for the worker, beyond --duration")
	o.addOutputFlag(cmd)
	cmd.Flags().DurationVar(&duration, "duration", 0, "how long to profile (cpu, trace, gc)")
	cmd.Flags().StringVarP(&file, "file", "o", "", "write the dump to this file (- for standard output)")
	cmd.Flags().StringVar(&dir, "dir", defaultDumpDirectory(), "where dumps go without -o ($"+EnvDumpDir+", else "+defaultDumpDir+" here)")
	cmd.Flags().BoolVar(&gc, "gc", false, "collect garbage before a heap profile")
	return cmd
}

// EnvDumpDir names the dump directory of vigil dump.
const EnvDumpDir = "VIGIL_DUMP_DIR"

// defaultDumpDir is the dump directory without --dir or VIGIL_DUMP_DIR
// (the repository's .gitignore covers it).
const defaultDumpDir = "vigil-dumps"

func defaultDumpDirectory() string {
	if d := os.Getenv(EnvDumpDir); d != "" {
		return d
	}
	return defaultDumpDir
}

// dumpRequest is what one vigil dump asks for.
type dumpRequest struct {
	kind dumpKind
	arg  string // WORKER
	file string // -o; "": the default
	dir  string // --dir
	gc   bool
	// durationSet: --duration was given (else kind.duration is the default).
	durationSet bool
}

// runDump takes one dump of the worker that req.arg names. What takes a
// while says so on errOut.
func runDump(parent context.Context, o *opOptions, req dumpRequest, out, errOut io.Writer) error {
	kind := req.kind
	// Ctrl-C stops a long profile; gc's window still gets its stop call.
	sigctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(sigctx)
	defer cancel()
	if o.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, o.timeout+kind.duration)
		defer cancel()
	}
	c, v, err := o.fetchStatus(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	target, err := resolveWorker(v, req.arg)
	if err != nil {
		return err
	}
	withDuration := *o
	if o.timeout > 0 {
		withDuration.timeout = o.timeout + kind.duration
	}
	d := &dumper{o: &withDuration, c: c, req: req, target: target, errOut: errOut, now: time.Now()}

	// A worker that does not say it answers inline (the original's) writes
	// the dump into the dump directory itself, if it runs on this host.
	local := onThisHost(target.PID) && target.ConnID != ""
	if !target.SaysInline() && local {
		return d.viaFile(ctx, out)
	}
	reply, err := d.call(ctx, nil)
	if err != nil && local && refusesInline(err) {
		return d.viaFile(ctx, out)
	}
	if err != nil {
		return dumpError(kind, err)
	}
	return writeDump(out, o.output, kind, target, reply, req.file, req.dir, d.now)
}

// dumper takes one dump: the call, its progress, where it goes.
type dumper struct {
	o      *opOptions // --timeout includes the dump's duration
	c      *supervisor.Client
	req    dumpRequest
	target *statusview.Worker
	errOut io.Writer
	now    time.Time
}

// call asks the worker for the dump, with extra parameters.
func (d *dumper) call(ctx context.Context, extra map[string]any) (*rpc.Message, error) {
	kind := d.req.kind
	if kind.name == "gc" {
		return d.gcProfile(ctx, extra)
	}
	params := make(map[string]any, len(kind.params)+len(extra)+2)
	for k, v := range kind.params {
		params[k] = v
	}
	for k, v := range extra {
		params[k] = v
	}
	if kind.duration > 0 {
		params["duration"] = kind.duration.Seconds()
	}
	if d.req.gc {
		params["gc"] = true
	}
	said := false
	progress := func(m *rpc.Message) error {
		if m.GetBool("started") && !said {
			said = true
			d.waiting()
		}
		return nil
	}
	return d.o.forward(ctx, d.c, d.target, kind.op, params, progress)
}

// waiting says on standard error what the dump waits for.
func (d *dumper) waiting() {
	kind := d.req.kind
	how := "Ctrl-C stops early"
	if !d.req.durationSet {
		how = "the default; --duration to change, " + how
	}
	fmt.Fprintf(d.errOut, "%s of %s: waiting %v (%s)...\n", kind.what, d.target.Describe(), kind.duration, how)
}

// gcProfile starts the garbage profile, waits, and stops it, even when
// interrupted.
func (d *dumper) gcProfile(ctx context.Context, extra map[string]any) (*rpc.Message, error) {
	kind := d.req.kind
	if _, err := d.o.forward(ctx, d.c, d.target, "garbage_profile_start", nil, nil); err != nil {
		return nil, err
	}
	d.waiting()
	t := time.NewTimer(kind.duration)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	reply, err := d.o.forward(sctx, d.c, d.target, kind.op, extra, nil)
	if ctx.Err() != nil && err == nil {
		err = failed(ctx.Err(), "%s of %s: interrupted after %v (the profile was stopped)", kind.what, d.target.Describe(), kind.duration)
	}
	return reply, err
}

// dumpError adds, to a worker's refusal of the operation, which workers
// serve it.
func dumpError(kind dumpKind, err error) error {
	var e *exitError
	var remote *rpc.RemoteError
	if errors.As(err, &e) && errors.As(err, &remote) && remote.Class == "NoMethodError" {
		return failed(err, "%v: `vigil dump %s` needs a Go worker built with vigil's worker library (github.com/vigild/vigil/worker)", e.err, kind.name)
	}
	return err
}

// dumpReply is a diagnostic's reply.
type dumpReply struct {
	Data     json.RawMessage `json:"data"`
	Encoding string          `json:"encoding"`
	Format   string          `json:"format"`
	Path     string          `json:"path"`
}

// writeDump writes the dump of an inline reply where asked and says where
// it went.
func writeDump(out io.Writer, output string, kind dumpKind, target *statusview.Worker, reply *rpc.Message, file, dir string, now time.Time) error {
	var r dumpReply
	if err := reply.Decode(&r); err != nil {
		return failed(err, "%s of %s: unreadable reply: %v", kind.what, target.Describe(), err)
	}
	if r.Path != "" { // the worker wrote it itself
		writeLine(out, "%s of %s written by the worker to %s", kind.what, target.Describe(), r.Path)
		return nil
	}
	if len(r.Data) == 0 || string(r.Data) == "null" {
		return failed(nil, "%s of %s: the reply has no data: %s", kind.what, target.Describe(), reply)
	}
	var data []byte
	switch {
	case r.Data[0] == '"':
		var s string
		if err := json.Unmarshal(r.Data, &s); err != nil {
			return failed(err, "%s of %s: unreadable data: %v", kind.what, target.Describe(), err)
		}
		data = []byte(s)
		if r.Encoding == "base64" {
			var err error
			if data, err = base64.StdEncoding.DecodeString(s); err != nil {
				return failed(err, "%s of %s: bad base64 data: %v", kind.what, target.Describe(), err)
			}
		}
	default: // JSON
		switch {
		case output == "json":
			data = append(bytes.Clone(r.Data), '\n')
		case kind.name == "sample":
			data = sampleTable(r.Data, target)
		default:
			data = jsonTable(r.Data)
		}
	}
	if file == "" && kind.binary {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return failed(err, "%s of %s: dump directory: %v (nothing written; -o FILE or --dir DIR to choose)", kind.what, target.Describe(), err)
		}
		file = filepath.Join(dir, defaultDumpFile(kind, target, now))
	}
	return deliver(out, kind, target, data, file, kind.open)
}

// deliver writes a dump's bytes to standard output (file "" or "-") or to
// a new file, and says where it went and what opens it.
func deliver(out io.Writer, kind dumpKind, target *statusview.Worker, data []byte, file, open string) error {
	if file == "" || file == "-" {
		if _, err := out.Write(data); err != nil {
			return failed(err, "writing the %s: %v", kind.what, err)
		}
		if kind.binary || len(data) == 0 || data[len(data)-1] == '\n' {
			return nil
		}
		_, err := io.WriteString(out, "\n")
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return failed(err, "%s of %s: %v (nothing written)", kind.what, target.Describe(), err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(file)
		return failed(err, "%s of %s: writing %s: %v", kind.what, target.Describe(), file, err)
	}
	writeLine(out, "wrote %s of %s to %s (%s)", kind.what, target.Describe(), file, statusview.FormatSize(float64(len(data))))
	if open != "" {
		writeLine(out, "%s %s", open, shellQuote(file))
	}
	return nil
}

// defaultDumpFile names a dump: web.0-heap-20260102-150405.pprof.
func defaultDumpFile(kind dumpKind, target *statusview.Worker, now time.Time) string {
	name := target.Name()
	if target.Service == "" || target.Controller {
		name = "pid" + strconv.Itoa(target.PID)
	}
	name = strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r == ' ' {
			return '_'
		}
		return r
	}, name)
	return fmt.Sprintf("%s-%s-%s%s", name, kind.name, now.Format("20060102-150405"), kind.ext)
}

// shellQuote quotes a path for a shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./+:@%=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// jsonTable flattens a JSON object into "key  value" lines, nested keys
// joined with dots, sorted. An object that only wraps another
// ({"metrics": {...}}) is unwrapped.
func jsonTable(raw json.RawMessage) []byte {
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return append(bytes.Clone(raw), '\n')
	}
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, inner := range m {
			if im, ok := inner.(map[string]any); ok && len(im) > 0 {
				v = im
			}
		}
	}
	var lines [][2]string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 0 {
				lines = append(lines, [2]string{prefix, "{}"})
			}
			for k, e := range x {
				key := k
				if prefix != "" {
					key = prefix + "." + k
				}
				walk(key, e)
			}
		default:
			b, _ := json.Marshal(x)
			if s, ok := x.(string); ok {
				b = []byte(s)
			}
			lines = append(lines, [2]string{prefix, string(b)})
		}
	}
	walk("", v)
	slices.SortFunc(lines, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	width := 0
	for _, l := range lines {
		width = max(width, len(l[0]))
	}
	var b bytes.Buffer
	for _, l := range lines {
		fmt.Fprintf(&b, "%-*s  %s\n", width, l[0], l[1])
	}
	return b.Bytes()
}
