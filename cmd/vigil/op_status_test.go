package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

var opUpdate = flag.Bool("op-update", false, "rewrite the operator tests' golden files")

// opGolden compares got with testdata/NAME, or rewrites it with -op-update.
func opGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *opUpdate {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -op-update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -op-update to accept):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// opStatusFromFile reads a status reply recorded as JSON lines: the
// intermediate replies, then the final one.
func opStatusFromFile(t *testing.T, path string) *supervisor.Status {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st := &supervisor.Status{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	var msgs []*rpc.Message
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		m, err := rpc.Parse(bytes.Clone(sc.Bytes()))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		msgs = append(msgs, m)
	}
	st.Parts, st.Final = msgs[:len(msgs)-1], msgs[len(msgs)-1]
	return st
}

// opFixtureNow is the time the fixture's status is rendered at: its
// backing-off web.2 starts again at 16:05:00, 3.2 s later.
var opFixtureNow = time.Date(2026, 1, 2, 16, 4, 56, 800e6, time.UTC)

// The join of the controller's children, the connections and both
// monitors' figures, rendered exactly.
func TestOpStatusRenderFixture(t *testing.T) {
	st := opStatusFromFile(t, "testdata/op_status_fixture.jsonl")
	v := statusview.New(st)
	var b bytes.Buffer
	if err := renderStatus(&b, v, false, opFixtureNow); err != nil {
		t.Fatal(err)
	}
	opGolden(t, "op_status_fixture.golden", b.String())

	// Colour marks the states only when asked.
	if strings.Contains(b.String(), "\x1b[") {
		t.Error("colour without a terminal")
	}
	b.Reset()
	renderStatus(&b, v, true, opFixtureNow)
	if !strings.Contains(b.String(), ansiGreen+"ready") || !strings.Contains(b.String(), ansiRed+"unhealthy") {
		t.Errorf("coloured output lacks the states' colours:\n%q", b.String())
	}
}

func TestOpStatusKillsPerService(t *testing.T) {
	st := opStatusFromFile(t, "testdata/op_status_fixture.jsonl")
	// Replace the memory monitor's kills with the per-service shape.
	for i, p := range st.Parts {
		if p.Has("memory_monitor") {
			m, err := rpc.Parse([]byte(`{"memory_monitor":{"processes":{},"kills":{"web":{"maximum_size_limit":2,"increase_limit":1}}}}`))
			if err != nil {
				t.Fatal(err)
			}
			st.Parts[i] = m
		}
	}
	var b bytes.Buffer
	renderStatus(&b, statusview.New(st), false, opFixtureNow)
	if !strings.Contains(b.String(), "memory kills 3 (increase_limit 1, maximum_size_limit 2)") {
		t.Errorf("per-service kills missing:\n%s", b.String())
	}
	if strings.Contains(b.String(), "memory monitor kills") {
		t.Errorf("per-service kills shown as global:\n%s", b.String())
	}
}

// opMaskTable checks that every row of a status table is aligned on its
// header (left-aligned columns start under their label, right-aligned ones
// end under it) and returns the table with the varying columns masked,
// laid out on the header's anchors.
func opMaskTable(t *testing.T, table string) string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	header := lines[0]
	type col struct {
		name         string
		start, end   int
		right        bool
		mask         string
		alwaysMasked bool
	}
	masks := map[string]string{"PID": "<pid>", "CONNECTION": "<conn>", "UPTIME": "<up>", "CPU": "<cpu>", "PRIVATE": "<mem>", "RESIDENT": "<mem>"}
	var cols []col
	at := 0
	for i, h := range statusHeaders {
		j := strings.Index(header[at:], h)
		if j < 0 {
			t.Fatalf("header %q lacks %q", header, h)
		}
		c := col{name: h, start: at + j, end: at + j + len(h), right: []bool{false, true, true, false, false, true, true, true, true, true, false}[i], mask: masks[h]}
		c.alwaysMasked = h == "CPU" || h == "PRIVATE" || h == "RESIDENT" || h == "UPTIME"
		cols = append(cols, c)
		at = c.end
	}
	span := regexp.MustCompile(`\S+(?: \S+)*`)
	out := []string{header}
	for _, l := range lines[1:] {
		if l == "" {
			break
		}
		spans := span.FindAllStringIndex(l, -1)
		if len(spans) != len(cols) {
			t.Errorf("row %q: %d cells, want %d", l, len(spans), len(cols))
			continue
		}
		row := []byte(strings.Repeat(" ", len(header)+40))
		last := 0
		for i, c := range cols {
			s, e := spans[i][0], spans[i][1]
			if c.right && e != c.end || !c.right && s != c.start {
				t.Errorf("row %q: column %s misaligned (cell %d-%d, label %d-%d)", l, c.name, s, e, c.start, c.end)
			}
			text := l[s:e]
			if c.mask != "" && (c.alwaysMasked || text != "-") {
				text = c.mask
			}
			p := c.start
			if c.right {
				p = c.end - len(text)
			}
			copy(row[p:], text)
			last = max(last, p+len(text))
		}
		out = append(out, string(row[:last]))
	}
	return strings.Join(out, "\n") + "\n"
}

// opMaskSummary masks the varying figures of the services' lines.
func opMaskSummary(s string) string {
	for _, re := range []struct{ re, by string }{
		{`CPU [^,]+`, "CPU <cpu>"},
		{`private [^,]+`, "private <mem>"},
		{`resident [^,]+`, "resident <mem>"},
	} {
		s = regexp.MustCompile(re.re).ReplaceAllString(s, re.by)
	}
	return s
}

// The real binary against a supervisor with a (fake) controller and its
// workers: the table's layout, and the JSON.
func TestOpStatusEndToEnd(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opControllerReady(t, socket, "web=2,db=1")

	stdout, stderr, code := opRun(t, nil, "status", "--socket", socket)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	table, summary, _ := strings.Cut(stdout, "\n\n")
	got := opMaskTable(t, table+"\n") + "\n" + opMaskSummary(summary)
	opGolden(t, "op_status_e2e.golden", got)

	// VIGIL_SUPERVISOR_SOCKET is the default socket.
	stdout2, stderr, code := opRun(t, []string{EnvSupervisorSocket + "=" + socket}, "status")
	if code != 0 || !strings.Contains(stdout2, "web: 2 workers (2 ready)") {
		t.Errorf("status with %s: exit %d: %s%s", EnvSupervisorSocket, code, stdout2, stderr)
	}

	// Rows for scripts, and SERVICE.
	stdout, stderr, code = opRun(t, nil, "status", "--socket", socket, "--output", "json", "web")
	var rows []statusRow
	if code != 0 || json.Unmarshal([]byte(stdout), &rows) != nil || len(rows) != 2 {
		t.Fatalf("status --output json web: exit %d: %s%s", code, stdout, stderr)
	}
	for i, r := range rows {
		if r.Service != "web" || r.Instance == nil || *r.Instance != i || r.PID == nil || r.ConnectionID == nil ||
			r.State != "ready" || r.Uptime == nil || r.Restarts == nil || *r.Restarts != 0 {
			t.Errorf("row %d: %s", i, stdout)
		}
	}
	_, stderr, code = opRun(t, nil, "status", "--socket", socket, "cache")
	if code != exitNotFound || stderr != "vigil: no service cache: the services are db, web\n" {
		t.Errorf("status cache: exit %d: %s", code, stderr)
	}

	stdout, stderr, code = opRun(t, nil, "status", "--socket", socket, "--output", "raw")
	if code != 0 {
		t.Fatalf("status --output raw: exit %d: %s", code, stderr)
	}
	var replies []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &replies); err != nil {
		t.Fatalf("status --output raw: %v\n%s", err, stdout)
	}
	var children []statusview.Child
	var conns []map[string]any
	for _, r := range replies {
		if _, ok := r["id"]; ok {
			t.Errorf("reply keeps its id: %v", r)
		}
		if raw, ok := r["children"]; ok {
			json.Unmarshal(raw, &children)
		}
		if raw, ok := r["connections"]; ok {
			json.Unmarshal(raw, &conns)
		}
	}
	if len(children) != 3 || len(conns) != 4 {
		t.Errorf("json: %d children, %d connections; want 3 and 4:\n%s", len(children), len(conns), stdout)
	}
}

// Without a controller, the rows are the registered connections.
func TestOpStatusWithoutController(t *testing.T) {
	t.Parallel()
	socket := opShortSocket(t)
	opSupervise(t, socket)
	reg := opRegistrants(t, socket, 3, 0)
	stdout, stderr, code := opRun(t, nil, "status", "--socket", socket)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := strings.Count(stdout, "connected"); n != 3 {
		t.Errorf("%d connected rows, want 3:\n%s", n, stdout)
	}
	for _, want := range []string{"no controller registered", "svc: 3 workers (0 ready)", " " + reg.pid + " "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("missing %q:\n%s", want, stdout)
		}
	}
}

// `vigil status --output json`: one object per worker, every key present,
// the same schema whatever is known; a status text that names a state the
// worker has left is not shown; SERVICE filters.
func TestOpStatusRowsFixture(t *testing.T) {
	st := opStatusFromFile(t, "testdata/op_status_fixture.jsonl")
	var b bytes.Buffer
	if err := writeStatus(&b, "json", st, nil, false, opFixtureNow); err != nil {
		t.Fatal(err)
	}
	opGolden(t, "op_status_rows.golden", b.String())
	var rows []map[string]any
	if err := json.Unmarshal(b.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return strings.Join(ks, ",")
	}
	for _, r := range rows[1:] {
		if keys(r) != keys(rows[0]) {
			t.Errorf("rows differ in keys: %s and %s", keys(r), keys(rows[0]))
		}
	}
	if len(rows) != 5 || rows[1]["name"] != "web.0" || rows[1]["status"] != nil || rows[0]["status"] != "draining queue 3" {
		t.Errorf("rows: %v", rows)
	}
	if rows[3]["state"] != "backing off" || rows[3]["restart_in"] != 3.2 || rows[3]["pid"] != nil {
		t.Errorf("backing-off row: %v", rows[3])
	}

	b.Reset()
	if err := writeStatus(&b, "table", st, []string{"jobs"}, false, opFixtureNow); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "web") || !strings.Contains(b.String(), "jobs: 1 worker") {
		t.Errorf("status jobs:\n%s", b.String())
	}
	err := writeStatus(&b, "json", st, []string{"nosuch"}, false, opFixtureNow)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitNotFound || err.Error() != "no service nosuch: the services are jobs, web" {
		t.Errorf("unknown service: %v", err)
	}
}
