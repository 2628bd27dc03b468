package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/statusview"
)

func TestOpParseParams(t *testing.T) {
	p, err := parseParams([]string{"a=1", "b=x", "c=", "d=[1,2]", "e=null", "f=a=b"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	if want := `{"a":1,"b":"x","c":"","d":[1,2],"e":null,"f":"a=b"}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	for _, bad := range [][]string{{"x"}, {"=1"}, {"do=x"}, {"a=1", "a=2"}} {
		_, err := parseParams(bad)
		var e *exitError
		if !errors.As(err, &e) || e.code != exitUsage {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
}

func TestOpFormats(t *testing.T) {
	if got := shellQuote("a b'c"); got != `'a b'\''c'` {
		t.Errorf("shellQuote: %s", got)
	}
	if got := shellQuote("/tmp/web.0-heap.pprof"); got != "/tmp/web.0-heap.pprof" {
		t.Errorf("shellQuote: %s", got)
	}
	w := &statusview.Worker{Service: "web", Instance: 2, PID: 7}
	if got := defaultDumpFile(dumpKinds[1], w, time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)); got != "web.2-heap-20260102-150405.pprof" {
		t.Errorf("defaultDumpFile: %s", got)
	}
	got := string(jsonTable(json.RawMessage(`{"b":{"y":2,"x":"s"},"a":1.5,"e":{}}`)))
	if want := "a    1.5\nb.x  s\nb.y  2\ne    {}\n"; got != want {
		t.Errorf("jsonTable:\n%q\nwant\n%q", got, want)
	}
	got = string(jsonTable(json.RawMessage(`{"metrics":{"/gc/heap/goal:bytes":4194304,"/sched/goroutines:goroutines":7}}`)))
	if want := "/gc/heap/goal:bytes" + strings.Repeat(" ", 11) + "4194304\n/sched/goroutines:goroutines  7\n"; got != want {
		t.Errorf("jsonTable unwrapping:\n%q\nwant\n%q", got, want)
	}
}

// Without --duration, a dump says its wait is a default and how to change
// it (vigil dump gc waits 10 s).
func TestDumpWaitingMessage(t *testing.T) {
	kind, _ := findDumpKind("gc")
	w := &statusview.Worker{Service: "web", Instance: 0, PID: 7, ConnID: "0123456789"}
	var b bytes.Buffer
	d := &dumper{req: dumpRequest{kind: kind}, target: w, errOut: &b}
	d.waiting()
	want := "garbage collector profile of web.0 (pid 7, connection 01234567): waiting 10s (the default; --duration to change, Ctrl-C stops early)...\n"
	if b.String() != want {
		t.Errorf("%q, want %q", b.String(), want)
	}
}

// TestReloadReportCountsManyServices: a reload of a configuration of 300
// services that changed nothing named all 300 on one line; beyond ten
// they are counted, and the changed ones still named.
func TestReloadReportCountsManyServices(t *testing.T) {
	var changes []change
	for i := range 300 {
		changes = append(changes, change{Service: fmt.Sprintf("s%d", i), Change: "unchanged"})
	}
	var out strings.Builder
	writeChanges(&out, changes, nil, nil)
	if got := out.String(); got != "reload done: nothing changed (300 services unchanged)\n" {
		t.Errorf("got %q", got)
	}
	changes[7].Change = "replaced"
	out.Reset()
	writeChanges(&out, changes, nil, nil)
	if got, want := out.String(), "reload done: 1 replaced, 299 unchanged\n  s7: replaced\n  unchanged: 299 services\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	out.Reset()
	writeChanges(&out, changes[:3], nil, nil)
	if got := out.String(); got != "reload done: nothing changed (s0, s1, s2 unchanged)\n" {
		t.Errorf("got %q", got)
	}
}
