package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func init() {
	helpers["orig-worker"] = origWorkerMain
}

// origHeapDump is what the original-like worker's memory_dump writes: JSON
// lines, as Ruby's ObjectSpace.dump_all does.
const origHeapDump = `{"address":"0x7f0001", "type":"STRING", "bytesize":5, "value":"hello"}
{"address":"0x7f0002", "type":"ARRAY", "length":2}
`

// origThreadDump is its thread_dump.
const origThreadDump = "#<Thread:0x0001 run>\nworker.rb:28:in `each'\n"

// origWorkerMain plays the original's Ruby worker (argument NAME): it
// speaks the protocol in raw JSON lines, registers {process_id, name} and
// nothing else (with ORIG_OUTPUTS="a,b", "outputs" too), and answers as
// the original does: memory_dump refuses inline output ("Buffered output
// not supported!", an error with a message and no class) and writes to a
// "path"; thread_dump answers inline or to a path; memory_sample answers
// one final reply with the report as a JSON string; anything else is a
// NoMethodError. It runs until SIGTERM or its connection closes.
func origWorkerMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: orig-worker NAME")
		return 2
	}
	conn, err := net.Dial("unix", os.Getenv(EnvSupervisorSocket))
	if err != nil {
		fmt.Fprintln(os.Stderr, "orig-worker:", err)
		return 1
	}
	defer conn.Close()
	state := map[string]any{"process_id": os.Getpid(), "name": args[0]}
	if o := os.Getenv("ORIG_OUTPUTS"); o != "" {
		state["outputs"] = strings.Split(o, ",")
	}
	enc := json.NewEncoder(conn)
	if err := enc.Encode(map[string]any{"id": 2, "do": "register", "state": state}); err != nil {
		fmt.Fprintln(os.Stderr, "orig-worker:", err)
		return 1
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var call map[string]any
		if json.Unmarshal(sc.Bytes(), &call) != nil {
			continue
		}
		if call["id"] == 2.0 && call["finished"] == true {
			fmt.Println("registered", call["connection_id"])
			continue
		}
		op, _ := call["do"].(string)
		if op == "" {
			continue
		}
		reply := origAnswer(op, call)
		reply["id"] = call["id"]
		reply["finished"] = true
		if err := enc.Encode(reply); err != nil {
			return 1
		}
	}
	return 0
}

// origAnswer is the original worker's reply to one call, without id.
func origAnswer(op string, call map[string]any) map[string]any {
	fail := func(err map[string]any) map[string]any { return map[string]any{"failed": true, "error": err} }
	// dump writes to "path" and answers {path}, or answers inline.
	dump := func(text string, inline bool) map[string]any {
		if path, _ := call["path"].(string); path != "" {
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				return fail(map[string]any{"class": "Errno::EACCES", "message": err.Error()})
			}
			return map[string]any{"path": path}
		}
		if !inline {
			return fail(map[string]any{"message": "Buffered output not supported!"})
		}
		return map[string]any{"data": text}
	}
	switch op {
	case "memory_dump":
		if os.Getenv("ORIG_HEAP") == "pprof" { // a Go worker that does not say its outputs
			var b strings.Builder
			if err := pprof.Lookup("heap").WriteTo(&b, 0); err != nil {
				return fail(map[string]any{"class": "RuntimeError", "message": err.Error()})
			}
			return dump(b.String(), false)
		}
		return dump(origHeapDump, false)
	case "thread_dump":
		return dump(origThreadDump, true)
	case "memory_sample":
		if d, _ := call["duration"].(float64); d <= 0 {
			return fail(map[string]any{"class": "ArgumentError", "message": "Positive duration is required!"})
		}
		report := `{"total_allocated":{"size":272,"count":4},"total_retained":{"size":192,"count":3},"aggregates":[]}`
		return map[string]any{"data": report}
	}
	return fail(map[string]any{"class": "NoMethodError", "message": "undefined method `do_" + op + "'"})
}

// startOrigWorker starts the original-like worker on socket and waits until
// it has registered.
func startOrigWorker(t *testing.T, socket, name string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := helperCmd(t, "orig-worker", name)
	cmd.Env = append(cmd.Env, EnvSupervisorSocket+"="+socket)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "registered") {
		t.Fatalf("orig-worker did not register: %q", line)
	}
	go io.Copy(io.Discard, out)
	return cmd
}

// The original's worker registers {process_id, name}: its name names it,
// and vigil dump heap, which its memory_dump refuses to answer inline, asks
// it to write into the dump directory and reads the file from there.
func TestOpDumpOriginalWorker(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opSupervise(t, socket)
	w := startOrigWorker(t, socket, "ruby-worker-0")
	pid := strconv.Itoa(w.Process.Pid)
	dir := t.TempDir()
	dumps := filepath.Join(dir, "dumps")

	// Named by the name it registered.
	stdout, stderr, code := opRun(t, nil, "status", "--socket", socket, "--output", "json")
	if code != 0 || !strings.Contains(stdout, `"name":"ruby-worker-0","pid":`+pid) {
		t.Errorf("status: exit %d: %s%s", code, stdout, stderr)
	}
	stdout, stderr, code = opRun(t, nil, "forward", "--socket", socket, "ruby-worker-0", "memory_dump")
	if code != exitFailed || !strings.Contains(stderr, "memory_dump on ruby-worker-0 (pid "+pid+", connection ") ||
		!strings.Contains(stderr, "failed: Buffered output not supported!") {
		t.Errorf("forward memory_dump: exit %d: %s%s", code, stdout, stderr)
	}

	// heap without -o: the worker writes into the dump directory, where it
	// stays; its format is its own, not pprof.
	stdout, stderr, code = opRun(t, nil, "dump", "heap", "--socket", socket, "--dir", dumps, "ruby-worker-0")
	m := regexp.MustCompile(`^wrote heap profile of ruby-worker-0 \(pid ` + pid + `, connection \w+\) to (\S+/ruby-worker-0-heap-\d{8}-\d{6}\.dump) \(\d+ B\), written by the worker\n` +
		`\(in the worker's own format: not a Go pprof\)\n$`).FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		t.Fatalf("dump heap: exit %d: %q %s", code, stdout, stderr)
	}
	if b, err := os.ReadFile(m[1]); err != nil || string(b) != origHeapDump {
		t.Errorf("the dump in %s: %q %v", m[1], b, err)
	}

	// -o: the file is how the dump travels; nothing is left behind.
	heap := filepath.Join(dir, "heap.jsonl")
	stdout, stderr, code = opRun(t, nil, "dump", "heap", "--socket", socket, "--dir", dumps, "ruby-worker-0", "-o", heap)
	if b, err := os.ReadFile(heap); code != 0 || err != nil || string(b) != origHeapDump ||
		!strings.HasPrefix(stdout, "wrote heap profile of ruby-worker-0 (pid "+pid) {
		t.Errorf("dump heap -o: exit %d: %q %v: %s%s", code, b, err, stdout, stderr)
	}
	// A text dump prints as it would inline.
	stdout, stderr, code = opRun(t, nil, "dump", "goroutines", "--socket", socket, "--dir", dumps, "ruby-worker-0")
	if code != 0 || stdout != origThreadDump {
		t.Errorf("dump goroutines: exit %d: %q %s", code, stdout, stderr)
	}
	entries, _ := os.ReadDir(dumps)
	if len(entries) != 1 {
		t.Errorf("the dump directory holds %d entries, want the one kept dump: %v", len(entries), entries)
	}
}

// A worker that says it answers inline but refuses for one dump (as the
// original's memory_dump does) is asked again to write into the dump
// directory.
func TestOpDumpRefusedInline(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opSupervise(t, socket)
	startOrigWorker(t, socket, "mixed", "ORIG_OUTPUTS=inline,path")
	out := filepath.Join(t.TempDir(), "heap.out")
	stdout, stderr, code := opRun(t, []string{EnvDumpDir + "=" + t.TempDir()}, "dump", "heap", "--socket", socket, "mixed", "-o", out)
	if b, err := os.ReadFile(out); code != 0 || err != nil || string(b) != origHeapDump {
		t.Errorf("dump heap: exit %d: %q %v: %s%s", code, b, err, stdout, stderr)
	}
	// Its thread dump comes inline, as it says.
	stdout, stderr, code = opRun(t, []string{EnvDumpDir + "=/nonexistent/never-created"}, "dump", "goroutines", "--socket", socket, "mixed")
	if code != 0 || stdout != origThreadDump {
		t.Errorf("dump goroutines: exit %d: %q %s", code, stdout, stderr)
	}
}

// A worker that does not say its outputs but writes a Go heap profile: the
// file is named and opened as one.
func TestOpDumpViaFileProfile(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opSupervise(t, socket)
	startOrigWorker(t, socket, "quiet", "ORIG_HEAP=pprof")
	dumps := filepath.Join(t.TempDir(), "d")
	stdout, stderr, code := opRun(t, nil, "dump", "heap", "--socket", socket, "--dir", dumps, "quiet")
	m := regexp.MustCompile(`(?m)^go tool pprof (\S+/quiet-heap-\d{8}-\d{6}\.pprof)$`).FindStringSubmatch(stdout)
	if code != 0 || m == nil || !strings.HasPrefix(stdout, "wrote heap profile of quiet (pid ") {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	opParseProfile(t, m[1], "inuse_space")
	if entries, _ := os.ReadDir(dumps); len(entries) != 1 {
		t.Errorf("the dump directory holds %v, want the profile alone", entries)
	}
}
