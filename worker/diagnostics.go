package worker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/vigild/vigil/rpc"
)

// MaxDuration is the longest duration a diagnostic accepts.
const MaxDuration = time.Hour

// MaxInline is the largest inline reply a diagnostic sends: a longer line
// would exceed the protocol's line limit (rpc.DefaultMaxLineSize) at the
// supervisor, which would close the connection. A larger result fails the
// call with a message that suggests "path".
const MaxInline = rpc.DefaultMaxLineSize - 64<<10

// durationRequired is the original's message for a missing or non-positive
// duration, kept so that tools matching it still work.
const durationRequired = "Positive duration is required!"

// Diagnostics serves the diagnostic operations of a Go worker. The zero
// value is ready to use; Logger (nil discards) receives the output of calls
// that ask for "log". Its state (a running garbage profile) is its own; the
// runtime's CPU profiler, tracer and memory profile rate are the process's,
// so two of those at once fail with ErrAlreadyRunning whichever Diagnostics
// started the first.
type Diagnostics struct {
	// Logger receives "log" output; nil discards.
	Logger *slog.Logger
	// Dir is the only directory the "path" output may write into (default:
	// the system's temporary directory). A relative path is taken inside
	// it; an absolute one must lie inside it. Whoever can reach the
	// supervisor socket so cannot make the worker create files elsewhere.
	Dir string

	mu        sync.Mutex
	gcStart   *gcSnapshot
	stackHint atomic.Int64 // size of the last goroutine dump
}

// Handlers returns the diagnostic operations by name, in a new map the
// caller may extend:
//
//   - thread_dump: every goroutine's stack; format "text" (default, as
//     runtime/pprof's goroutine profile with debug=2), "grouped" (debug=1)
//     or "pprof".
//   - memory_dump: a heap profile; format "pprof" (default) or "text";
//     "gc": true runs a collection first.
//   - memory_sample: "duration" seconds (required, positive): what was
//     allocated during the window and is still live after a collection at
//     its end, as JSON (see [MemorySample]). "sample_rate" (bytes, default 1:
//     every allocation) trades precision for overhead; "limit" caps the
//     entries of each aggregate (default 50). While it runs, memory_dump
//     waits for it (both use the process-wide runtime.MemProfileRate, which
//     the program itself should then leave alone). By default it answers
//     as the original's Ruby worker does, so that the original's tools
//     read it: one final reply whose "data" is the report as a JSON
//     string, with the original's keys (total_allocated, total_retained,
//     aggregates) and vigil's alongside. With "stream": true (what vigil's
//     own tools ask for), it sends the intermediate "started" reply and
//     "data" as a JSON object.
//   - scheduler_dump: goroutines, GOMAXPROCS and the /sched/ metrics, JSON.
//   - garbage_profile_start / garbage_profile_stop: GC activity between the
//     two, JSON.
//   - cpu_profile: "duration" seconds, a pprof CPU profile.
//   - trace: "duration" seconds, a runtime/trace execution trace.
//   - runtime_metrics: every runtime/metrics value, JSON.
//
// Output, for all but garbage_profile_start: with "path", the result is
// written to that file (relative to the worker's directory), which must not
// exist (created with mode 0600; an existing file or a failed write fails
// the call with class IOError and leaves no partial file), and the reply is
// {"path"} with the absolute path; with "log" (a message, or true), it is logged;
// otherwise it is inline: {"data": text} for text, {"data": base64,
// "encoding": "base64"} for binary formats, {"data": object} for JSON; the
// reply's "format" names the format. Operations with a duration (but
// memory_sample, unless asked for "stream") send one intermediate reply
// {"started": true, "duration": seconds} once the window has begun. Bad parameters fail the call with class ArgumentError and a
// message naming the parameter.
func (d *Diagnostics) Handlers() rpc.Handlers {
	return rpc.Handlers{
		"thread_dump":           d.handle("thread_dump", opSpec{formats: []string{"text", "grouped", "pprof"}}, d.threadDump),
		"memory_dump":           d.handle("memory_dump", opSpec{formats: []string{"pprof", "text"}}, d.memoryDump),
		"memory_sample":         d.handle("memory_sample", opSpec{formats: []string{"json"}, duration: true, original: true}, d.memorySample),
		"scheduler_dump":        d.handle("scheduler_dump", opSpec{formats: []string{"json"}}, d.schedulerDump),
		"garbage_profile_start": d.garbageProfileStart,
		"garbage_profile_stop":  d.handle("garbage_profile_stop", opSpec{formats: []string{"json"}}, d.garbageProfileStop),
		"cpu_profile":           d.handle("cpu_profile", opSpec{formats: []string{"pprof"}, duration: true}, d.cpuProfile),
		"trace":                 d.handle("trace", opSpec{formats: []string{"trace"}, duration: true}, d.trace),
		"runtime_metrics":       d.handle("runtime_metrics", opSpec{formats: []string{"json"}}, d.runtimeMetrics),
	}
}

// opSpec says how a diagnostic takes its parameters and replies.
type opSpec struct {
	formats  []string // the formats it produces; the first is the default
	duration bool     // it takes a required "duration"
	// original: it replies as the original's Ruby worker does unless the
	// call asks for "stream": one final reply whose JSON data is a string
	// (the original's client parses it), no intermediate reply. With
	// "stream": true, the intermediate {"started"} reply and the JSON as an
	// object.
	original bool
}

// request is a diagnostic call's parsed parameters.
type request struct {
	op       string
	msg      *rpc.Message
	format   string
	duration time.Duration
	started  func() // sends the intermediate "started" reply, if any
}

// result is a diagnostic's output.
type result struct {
	data   []byte
	format string
	// jsonString: JSON data goes inline as a JSON string, not an object.
	jsonString bool
}

func (r result) binary() bool { return r.format == "pprof" || r.format == "trace" }

type producer func(ctx context.Context, req *request) (result, error)

// handle wraps a producer with parameter parsing and output delivery.
func (d *Diagnostics) handle(op string, spec opSpec, produce producer) rpc.Handler {
	return func(ctx context.Context, call *rpc.Call) error {
		m := call.Message()
		req := &request{op: op, msg: m, format: spec.formats[0], started: func() {}}
		if raw, ok := m.Get("format"); ok && string(raw) != "null" {
			f, ok := m.GetString("format")
			if !ok || !slices.Contains(spec.formats, f) {
				return rpc.ArgumentError("%s: unknown format %s: want one of %q", op, raw, spec.formats)
			}
			req.format = f
		}
		stream := !spec.original
		if raw, ok := m.Get("stream"); ok && spec.original && string(raw) != "null" {
			if string(raw) != "true" && string(raw) != "false" {
				return rpc.ArgumentError("%s: stream must be true or false, got %s", op, raw)
			}
			stream = string(raw) == "true"
		}
		if spec.duration {
			dur, err := parseDuration(op, m)
			if err != nil {
				return err
			}
			req.duration = dur
			if stream {
				req.started = func() {
					_ = call.Reply(map[string]any{"started": true, "duration": dur.Seconds()})
				}
			}
		}
		out, err := parseOutput(op, m)
		if err != nil {
			return err
		}
		if out.path != "" {
			root, rel, err := d.outputFile(op, out.path)
			if err != nil {
				return err
			}
			defer root.Close()
			out.path = filepath.Join(root.Name(), rel) // the reply says where
			f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return rpc.Errorf("IOError", "%s: path %s: %v", op, out.path, errors.Unwrap(err))
			}
			res, err := produce(ctx, req)
			if err == nil {
				_, err = f.Write(res.data)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					err = rpc.Errorf("IOError", "%s: path: %v", op, err)
				}
			} else {
				f.Close()
			}
			if err != nil {
				_ = root.Remove(rel)
				return err
			}
			return call.Finish(map[string]any{"path": out.path, "format": res.format})
		}
		res, err := produce(ctx, req)
		if err != nil {
			return err
		}
		res.jsonString = !stream
		if out.log != "" {
			d.logOutput(out.log, op, res)
			return call.Finish(map[string]any{"logged": true, "format": res.format})
		}
		reply := inline(res)
		if len(reply) > MaxInline {
			return rpc.Errorf("RuntimeError", "%s: the result (%d bytes) is too large to send inline (limit %d): ask for it with \"path\", or \"log\"", op, len(reply), MaxInline)
		}
		return call.Finish(reply)
	}
}

// outputFile opens the dump directory and returns path relative to it;
// a path outside it is an error.
func (d *Diagnostics) outputFile(op, path string) (*os.Root, string, error) {
	dir := d.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", rpc.Errorf("IOError", "%s: dump directory: %v", op, err)
	}
	rel := filepath.Clean(path)
	if filepath.IsAbs(rel) {
		if rel, err = filepath.Rel(dir, rel); err != nil {
			rel = ".."
		}
	}
	if rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, "", rpc.ArgumentError("%s: path %q is outside the dump directory %s", op, path, dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, "", rpc.Errorf("IOError", "%s: dump directory: %v", op, err)
	}
	return root, rel, nil
}

// inline builds the {"data"} reply fields without re-encoding JSON results.
func inline(res result) json.RawMessage {
	var b bytes.Buffer
	b.Grow(len(res.data)*4/3 + 64)
	b.WriteString(`{"data":`)
	switch {
	case res.binary():
		b.WriteByte('"')
		enc := base64.NewEncoder(base64.StdEncoding, &b)
		enc.Write(res.data)
		enc.Close()
		b.WriteString(`","encoding":"base64"`)
	case res.format == "json" && !res.jsonString:
		b.Write(res.data)
	default:
		b.Write(appendJSONString(b.AvailableBuffer(), res.data))
	}
	fmt.Fprintf(&b, `,"format":%q}`, res.format)
	return b.Bytes()
}

// appendJSONString appends text as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(dst, text []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(text); {
		c := text[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(text[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, text[start:i]...)
				dst = append(dst, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, text[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, text[start:]...)
	return append(dst, '"')
}

func (d *Diagnostics) logOutput(msg, op string, res result) {
	logger := d.Logger
	if logger == nil {
		return
	}
	var data slog.Attr
	switch {
	case res.binary():
		data = slog.String("data", base64.StdEncoding.EncodeToString(res.data))
	default:
		data = slog.String("data", string(res.data))
	}
	logger.Info(msg, slog.String("operation", op), slog.String("format", res.format), data)
}

type output struct {
	path string
	log  string
}

func parseOutput(op string, m *rpc.Message) (output, error) {
	var out output
	if raw, ok := m.Get("path"); ok && string(raw) != "null" {
		p, ok := m.GetString("path")
		if !ok || p == "" {
			return out, rpc.ArgumentError("%s: path must be a non-empty string, got %s", op, raw)
		}
		out.path = p
	}
	if raw, ok := m.Get("log"); ok && string(raw) != "null" && string(raw) != "false" {
		switch s, isString := m.GetString("log"); {
		case string(raw) == "true":
			out.log = op
		case isString && s != "":
			out.log = s
		default:
			return out, rpc.ArgumentError("%s: log must be a message string or true, got %s", op, raw)
		}
	}
	return out, nil
}

// parseDuration reads the required "duration" parameter in seconds.
func parseDuration(op string, m *rpc.Message) (time.Duration, error) {
	raw, ok := m.Get("duration")
	if !ok || string(raw) == "null" {
		return 0, rpc.ArgumentError("%s: %s (duration: missing; want seconds > 0)", op, durationRequired)
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, rpc.ArgumentError("%s: %s (duration: %s is not a number of seconds)", op, durationRequired, raw)
	}
	if !(secs > 0) || math.IsInf(secs, 0) {
		return 0, rpc.ArgumentError("%s: %s (duration: got %s)", op, durationRequired, raw)
	}
	if secs > MaxDuration.Seconds() {
		return 0, rpc.ArgumentError("%s: duration: %s seconds is longer than the maximum %v", op, raw, MaxDuration)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// wait waits for the window to pass, or fails when ctx ends first.
func wait(ctx context.Context, op string, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: interrupted: %w", op, ctx.Err())
	}
}

func (d *Diagnostics) threadDump(ctx context.Context, req *request) (result, error) {
	if req.format != "text" {
		return writeProfile("goroutine", req.format, map[string]int{"grouped": 1, "pprof": 0})
	}
	// runtime.Stack of all goroutines is what the goroutine profile writes
	// with debug=2; sizing the buffer from the last dump saves the profile's
	// doubling from 1 MiB.
	size := max(int(d.stackHint.Load())*5/4, 64<<10)
	for {
		buf := make([]byte, size)
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			d.stackHint.Store(int64(n))
			return result{data: buf[:n], format: "text"}, nil
		}
		size *= 2
	}
}

func writeProfile(name, format string, debug map[string]int) (result, error) {
	p := pprof.Lookup(name)
	if p == nil {
		return result{}, fmt.Errorf("no %s profile", name)
	}
	var b bytes.Buffer
	if err := p.WriteTo(&b, debug[format]); err != nil {
		return result{}, fmt.Errorf("%s profile: %w", name, err)
	}
	if format == "grouped" {
		format = "text"
	}
	return result{data: b.Bytes(), format: format}, nil
}

// heapSem serialises the uses of the process-wide heap profile settings
// (runtime.MemProfileRate) between memory_sample and memory_dump.
var heapSem = make(chan struct{}, 1)

func (d *Diagnostics) memoryDump(ctx context.Context, req *request) (result, error) {
	select {
	case heapSem <- struct{}{}:
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
	defer func() { <-heapSem }()
	if req.msg.GetBool("gc") {
		runtime.GC()
	}
	return writeProfile("heap", req.format, map[string]int{"pprof": 0, "text": 1})
}

func (d *Diagnostics) cpuProfile(ctx context.Context, req *request) (result, error) {
	var b bytes.Buffer
	if err := pprof.StartCPUProfile(&b); err != nil {
		return result{}, alreadyRunning(req.op, "a CPU profile is already being taken in this process")
	}
	req.started()
	err := wait(ctx, req.op, req.duration)
	pprof.StopCPUProfile()
	if err != nil {
		return result{}, err
	}
	return result{data: b.Bytes(), format: "pprof"}, nil
}

func (d *Diagnostics) trace(ctx context.Context, req *request) (result, error) {
	var b bytes.Buffer
	if err := trace.Start(&b); err != nil {
		return result{}, alreadyRunning(req.op, "an execution trace is already being taken in this process")
	}
	req.started()
	err := wait(ctx, req.op, req.duration)
	trace.Stop()
	if err != nil {
		return result{}, err
	}
	return result{data: b.Bytes(), format: "trace"}, nil
}

func jsonResult(v any) (result, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return result{}, err
	}
	return result{data: b, format: "json"}, nil
}

// opError is a diagnostic's failure: it travels as its rpc.Error and
// matches its sentinel with errors.Is.
type opError struct {
	wire     *rpc.Error
	sentinel error
}

func (e *opError) Error() string   { return e.wire.Error() }
func (e *opError) Unwrap() []error { return []error{e.wire, e.sentinel} }

func alreadyRunning(op, what string) error {
	return &opError{rpc.Errorf("RuntimeError", "%s: %s: %s", op, ErrAlreadyRunning.Error(), what), ErrAlreadyRunning}
}
