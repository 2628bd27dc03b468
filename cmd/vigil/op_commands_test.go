package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/supervisor"
	"github.com/vigild/vigil/worker"
)

// opChildren asks for the controller's children, for the tests' checks:
// SERVICE.INSTANCE -> child, the current one when an old one is stopping.
func opChildren(t *testing.T, socket string) map[string]statusview.Child {
	t.Helper()
	m, err := statusChildren(socket)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// statusChildren is opChildren for a goroutine other than the test's: it
// returns its error.
func statusChildren(socket string) (map[string]statusview.Child, error) {
	c, err := supervisor.Dial(context.Background(), socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	st, err := callStatus(context.Background(), c)
	if err != nil {
		return nil, err
	}
	m := map[string]statusview.Child{}
	for _, ch := range statusview.New(st).Children {
		name := ch.Service + "." + strconv.Itoa(ch.Instance)
		if prev, ok := m[name]; ok && prev.State != "stopping" && ch.State == "stopping" {
			continue // the old child of a restart, still stopping
		}
		m[name] = ch
	}
	return m, nil
}

// opConnIDs returns SERVICE.INSTANCE -> connection id.
func opConnIDs(t *testing.T, socket string) map[string]string {
	t.Helper()
	c, err := supervisor.Dial(context.Background(), socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := callStatus(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, w := range statusview.New(st).Connections {
		m[w.Name()] = w.ConnID
	}
	return m
}

func TestOpForward(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opControllerReady(t, socket, "web=2")
	kids := opChildren(t, socket)
	ids := opConnIDs(t, socket)
	pid := strconv.Itoa(kids["web.1"].PID)

	// Replies stream as JSON lines; the worker can be named three ways.
	for _, worker := range []string{"web.1", pid, ids["web.1"][:6]} {
		stdout, stderr, code := opRun(t, nil, "forward", "--socket", socket, worker, "stream")
		if code != 0 {
			t.Fatalf("forward %s stream: exit %d: %s", worker, code, stderr)
		}
		want := "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"finished\":true,\"done\":true}\n"
		if stdout != want {
			t.Errorf("forward %s stream:\n%s\nwant:\n%s", worker, stdout, want)
		}
	}

	// key=value: JSON when it parses, a string otherwise.
	stdout, stderr, code := opRun(t, nil, "forward", "--socket", socket, "web.0", "echo",
		"n=5", "flag=true", "path=/tmp/x y", `obj={"k":[1]}`, `s="quoted"`)
	if code != 0 {
		t.Fatalf("echo: exit %d: %s", code, stderr)
	}
	var echo map[string]any
	if err := json.Unmarshal([]byte(stdout), &echo); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	for k, want := range map[string]any{"do": "echo", "n": 5.0, "flag": true, "path": "/tmp/x y", "s": "quoted"} {
		if echo[k] != want {
			t.Errorf("echo %s = %#v, want %#v (%s)", k, echo[k], want, stdout)
		}
	}
	if obj, _ := echo["obj"].(map[string]any); obj == nil || len(obj["k"].([]any)) != 1 {
		t.Errorf("echo obj = %#v", echo["obj"])
	}

	// Usage errors: exit 2.
	for _, args := range [][]string{
		{"forward", "--socket", socket, "web.0", "echo", "novalue"},
		{"forward", "--socket", socket, "web.0", "echo", "do=x"},
		{"forward", "--socket", socket, "web.0"},
		{"status", "--socket", socket, "--output", "xml"},
	} {
		_, stderr, code := opRun(t, nil, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, stderr)
		}
	}

	// An unknown operation: the worker says so; exit 1.
	_, stderr, code = opRun(t, nil, "forward", "--socket", socket, "web.0", "bogus")
	if code != exitFailed || !strings.Contains(stderr, `web.0 (pid `+strconv.Itoa(kids["web.0"].PID)) || !strings.Contains(stderr, `does not serve "bogus"`) {
		t.Errorf("bogus: exit %d: %s", code, stderr)
	}

	// Shell completion asks the supervisor for the workers' names.
	stdout, stderr, code = opRun(t, nil, "__complete", "dump", "heap", "--socket", socket, "")
	if code != 0 || !strings.HasPrefix(stdout, "web.0\nweb.1\n:4\n") {
		t.Errorf("completion: exit %d: %q %s", code, stdout, stderr)
	}
	stdout, _, _ = opRun(t, nil, "__complete", "restart", "--socket", socket, "")
	if !strings.HasPrefix(stdout, "web\nweb.0\nweb.1\n:4\n") {
		t.Errorf("restart completion: %q", stdout)
	}
	stdout, _, _ = opRun(t, nil, "__complete", "dump", "")
	if !strings.HasPrefix(stdout, "goroutines\nheap\nallocs\n") {
		t.Errorf("dump kinds completion: %q", stdout)
	}

	// Timeout: which operation, which worker, after how long.
	start := time.Now()
	_, stderr, code = opRun(t, nil, "forward", "--socket", socket, "--timeout", "500ms", "web.1", "sleep")
	want := "vigil: sleep on web.1 (pid " + pid + ", connection " + ids["web.1"][:8] + ") timed out after 500ms (--timeout to wait longer)\n"
	if code != exitFailed || stderr != want {
		t.Errorf("timeout: exit %d:\n%q\nwant\n%q", code, stderr, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the timeout took %v", d)
	}
}

func TestOpWorkerNames(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opSupervise(t, socket)
	opRegistrants(t, socket, 2, 4242) // two registrations claim pid 4242

	_, stderr, code := opRun(t, nil, "forward", "--socket", socket, "4242", "x")
	if code != exitUsage || !strings.Contains(stderr, `"4242" is ambiguous: it matches svc.0 (pid 4242, connection `) ||
		!strings.Contains(stderr, "svc.1 (pid 4242, connection ") {
		t.Errorf("ambiguous pid: exit %d: %s", code, stderr)
	}
	_, stderr, code = opRun(t, nil, "dump", "heap", "--socket", socket, "nosuch.3")
	if code != exitNotFound || !strings.Contains(stderr, `no worker matches "nosuch.3": the workers are svc.0 (pid 4242`) {
		t.Errorf("unknown: exit %d: %s", code, stderr)
	}
}

func TestOpDumpHelperWorker(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opControllerReady(t, socket, "web=1")
	dir := t.TempDir()

	stdout, stderr, code := opRun(t, nil, "dump", "goroutines", "--socket", socket, "web.0")
	if code != 0 || !strings.Contains(stdout, "goroutine ") {
		t.Errorf("goroutines: exit %d: %.200s %s", code, stdout, stderr)
	}

	heap := filepath.Join(dir, "heap.pprof")
	stdout, stderr, code = opRun(t, nil, "dump", "heap", "--socket", socket, "web.0", "-o", heap)
	if code != 0 {
		t.Fatalf("heap: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "\ngo tool pprof "+heap+"\n") {
		t.Errorf("heap: no pprof line:\n%s", stdout)
	}
	opParseProfile(t, heap, "inuse_space")

	// The default file name, in the dump directory under the working
	// directory (.gitignore covers it); what it waits for, on stderr.
	cmd := exec.Command(vigilBin, "dump", "cpu", "--socket", socket, "--duration", "300ms", "web.0")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), EnvDumpDir+"=")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpu: %v: %s%s", err, out, errOut.String())
	}
	m := regexp.MustCompile(`(?m)^go tool pprof (vigil-dumps/web\.0-cpu-\d{8}-\d{6}\.pprof)$`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("cpu: no pprof line:\n%s", out)
	}
	opParseProfile(t, filepath.Join(dir, m[1]), "samples")
	if !regexp.MustCompile(`^CPU profile of web\.0 \(pid \d+, connection \w+\): waiting 300ms \(Ctrl-C stops early\)\.\.\.\n$`).MatchString(errOut.String()) {
		t.Errorf("cpu: stderr %q", errOut.String())
	}

	stdout, stderr, code = opRun(t, nil, "dump", "metrics", "--socket", socket, "web.0", "--output", "json")
	var metrics map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &metrics) != nil || metrics["gomaxprocs"] == nil {
		t.Errorf("metrics json: exit %d: %s %s", code, stdout, stderr)
	}
	stdout, _, code = opRun(t, nil, "dump", "metrics", "--socket", socket, "web.0")
	if code != 0 || !regexp.MustCompile(`(?m)^gomaxprocs\s+\d+$`).MatchString(stdout) {
		t.Errorf("metrics table: exit %d:\n%s", code, stdout)
	}
	stdout, stderr, code = opRun(t, nil, "dump", "gc", "--socket", socket, "--duration", "100ms", "web.0")
	if code != 0 || !strings.Contains(stdout, "collections") {
		t.Errorf("gc: exit %d: %s %s", code, stdout, stderr)
	}
	// gc says what it waits for.
	if !strings.Contains(stderr, "garbage collector profile of web.0 (pid ") || !strings.Contains(stderr, "): waiting 100ms (Ctrl-C stops early)...") {
		t.Errorf("gc: stderr %q", stderr)
	}

	// Flags that do not apply are usage errors.
	if _, stderr, code := opRun(t, nil, "dump", "heap", "--socket", socket, "--duration", "1s", "web.0"); code != exitUsage ||
		!strings.Contains(stderr, "--duration applies to cpu, trace, gc and sample, not to heap") {
		t.Errorf("heap --duration: exit %d: %s", code, stderr)
	}
	// An existing file is never overwritten.
	if _, stderr, code := opRun(t, nil, "dump", "heap", "--socket", socket, "web.0", "-o", heap); code != exitFailed ||
		!strings.Contains(stderr, "file exists (nothing written)") {
		t.Errorf("heap over an existing file: exit %d: %s", code, stderr)
	}
}

// A worker that does not serve the operation a dump needs: said plainly.
func TestOpDumpNotServed(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opSupervise(t, socket)
	cmd := helperCmd(t, "op-worker", "plain", "0")
	cmd.Env = append(cmd.Env, "OP_WORKER_MINIMAL=1", EnvSupervisorSocket+"="+socket)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	buf := make([]byte, 64)
	if n, _ := out.Read(buf); !bytes.HasPrefix(buf[:n], []byte("registered")) {
		t.Fatalf("worker: %q", buf[:n])
	}
	_, stderr, code := opRun(t, nil, "dump", "heap", "--socket", socket, "plain.0")
	want := `vigil: plain.0 (pid ` + strconv.Itoa(cmd.Process.Pid)
	if code != exitFailed || !strings.HasPrefix(stderr, want) ||
		!strings.Contains(stderr, `does not serve "memory_dump" (NoMethodError: unknown operation "memory_dump"): `+
			"`vigil dump heap` needs a Go worker built with vigil's worker library") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// opParseProfile checks that a file is a pprof profile with that sample type.
func opParseProfile(t *testing.T, path, sampleType string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, st := range p.SampleType {
		if st.Type == sampleType {
			return
		}
	}
	t.Errorf("%s: no %s sample type in %v", path, sampleType, p.SampleType)
}

// The example Go worker: each dump opened and checked.
func TestOpDumpGoWorker(t *testing.T) {
	goworker := filepath.Join(binDir, "goworker")
	if _, err := os.Stat(goworker); err != nil {
		t.Skip("examples/quickstart/goworker is not built in this tree")
	}
	t.Parallel()
	socket := opShortSocket(t)
	opSupervise(t, socket)
	w := exec.Command(goworker)
	w.Env = append(os.Environ(), EnvSupervisorSocket+"="+socket, "VIGIL_SERVICE=go", "VIGIL_INSTANCE=0")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Process.Signal(syscall.SIGTERM); w.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(opConnIDs(t, socket)["go.0"], "-") {
		if time.Now().After(deadline) {
			t.Fatal("goworker did not register as go.0")
		}
		time.Sleep(20 * time.Millisecond)
	}
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		stdout, stderr, code := opRun(t, nil, append([]string{"dump", "--socket", socket}, args...)...)
		if code != 0 {
			t.Fatalf("dump %v: exit %d: %s", args, code, stderr)
		}
		return stdout
	}
	if out := run("goroutines", "go.0"); !strings.Contains(out, "goroutine ") {
		t.Errorf("goroutines: %.300s", out)
	}
	run("heap", "go.0", "-o", filepath.Join(dir, "heap.pprof"))
	opParseProfile(t, filepath.Join(dir, "heap.pprof"), "inuse_space")
	out := run("allocs", "go.0", "-o", filepath.Join(dir, "allocs.pprof"))
	if !strings.Contains(out, "go tool pprof -sample_index=alloc_space ") {
		t.Errorf("allocs: %s", out)
	}
	opParseProfile(t, filepath.Join(dir, "allocs.pprof"), "alloc_space")
	run("cpu", "go.0", "--duration", "300ms", "-o", filepath.Join(dir, "cpu.pprof"))
	opParseProfile(t, filepath.Join(dir, "cpu.pprof"), "samples")
	out = run("trace", "go.0", "--duration", "200ms", "-o", filepath.Join(dir, "x.trace"))
	if !strings.Contains(out, "go tool trace ") {
		t.Errorf("trace: %s", out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "x.trace")); err != nil || !bytes.HasPrefix(b, []byte("go 1.")) {
		t.Errorf("trace: not an execution trace: %.20q %v", b, err)
	}
	var gc, metrics map[string]any
	if err := json.Unmarshal([]byte(run("gc", "go.0", "--duration", "100ms", "--output", "json")), &gc); err != nil {
		t.Errorf("gc: %v", err)
	}
	if err := json.Unmarshal([]byte(run("metrics", "go.0", "--output", "json")), &metrics); err != nil || len(metrics) == 0 {
		t.Errorf("metrics: %v %d", err, len(metrics))
	}
	// A memory sample in vigil's form: a table, or the report as JSON.
	if out := run("sample", "go.0", "--duration", "200ms"); !strings.HasPrefix(out, "memory sample of go.0 (pid ") ||
		!strings.Contains(out, "over 0.2s (every allocation recorded)\nallocated ") || !strings.Contains(out, "RETAINED  OBJECTS  ALLOCATED  OBJECTS  LOCATION\n") {
		t.Errorf("sample: %s", out)
	}
	var sample worker.MemorySample
	if err := json.Unmarshal([]byte(run("sample", "go.0", "--duration", "200ms", "--output", "json")), &sample); err != nil ||
		sample.Duration != 0.2 || len(sample.Aggregates) != 4 {
		t.Errorf("sample json: %v %+v", err, sample)
	}
}
