package top

import (
	"context"
	"errors"
	"math"
	"os/exec"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/vigild/vigil/internal/statusview"
)

// view builds a status view of workers: name, state, CPU %, private bytes.
func view(rows ...*statusview.Worker) *statusview.View {
	return &statusview.View{Workers: rows, Controller: &statusview.Worker{Controller: true}}
}

func worker(service string, instance, pid int, state string, cpu, private float64) *statusview.Worker {
	return &statusview.Worker{Service: service, Instance: instance, PID: pid, State: state, Uptime: 65,
		CPU: cpu, Private: private, Resident: private * 2, Restarts: 0, ConnID: "c0ffee00-1"}
}

func press(m *Model, keys ...string) {
	for _, k := range keys {
		var msg tea.KeyPressMsg
		switch k {
		case "enter":
			msg = tea.KeyPressMsg{Code: tea.KeyEnter}
		case "esc":
			msg = tea.KeyPressMsg{Code: tea.KeyEscape}
		case "down":
			msg = tea.KeyPressMsg{Code: tea.KeyDown}
		case "up":
			msg = tea.KeyPressMsg{Code: tea.KeyUp}
		default:
			msg = tea.KeyPressMsg{Code: []rune(k)[0], Text: k}
		}
		m.Update(msg)
	}
}

// lines returns the screen's lines, trailing spaces cut.
func lines(m *Model) []string {
	out := strings.Split(m.render(), "\n")
	for i, l := range out {
		out[i] = strings.TrimRight(stripANSI(l), " ")
	}
	return out
}

// stripANSI removes escape sequences.
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			for i < len(s) && !(s[i] >= 'A' && s[i] <= 'Z' || s[i] >= 'a' && s[i] <= 'z') {
				i++
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// row finds the screen line of a worker.
func row(t *testing.T, m *Model, name string) string {
	t.Helper()
	for _, l := range lines(m) {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	t.Fatalf("no row for %s on the screen:\n%s", name, strings.Join(lines(m), "\n"))
	return ""
}

func newModel(restart func(context.Context, string) (string, error)) *Model {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	return New(context.Background(), Options{Title: "test.ipc", Restart: restart, Now: func() time.Time { return at },
		Status: func(context.Context) (*statusview.View, error) { return nil, errors.New("not in this test") }})
}

// TestRowsAndSparklines: a row per worker, with the figures of the last
// status and sparklines that rise with a figure that rises.
func TestRowsAndSparklines(t *testing.T) {
	m := newModel(nil)
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 20})
	for i := range 30 {
		m.Update(statusMsg{view: view(
			worker("web", 0, 100, "ready", float64(i), float64(10<<20+i<<20)),
			worker("web", 1, 101, "starting", 0, 5<<20),
			worker("job", 0, 0, "backing off", -1, -1),
		)})
	}
	web0 := row(t, m, "web.0")
	for _, want := range []string{"100", "ready", "1m05s", "29.0%", "39.0 MiB"} {
		if !strings.Contains(web0, want) {
			t.Errorf("web.0's row lacks %q: %s", want, web0)
		}
	}
	// Rising figures: the sparkline's last cell is the highest block, its
	// first drawn one lower.
	sw := m.sparkWidth()
	spark := m.cpu["web.0"].sparkline(sw, 0, 29)
	cells := []rune(strings.TrimLeft(spark, " "))
	if len(cells) < 2 || cells[len(cells)-1] != '█' || cells[0] >= cells[len(cells)-1] {
		t.Errorf("CPU sparkline of a rising figure: %q", spark)
	}
	if !strings.Contains(web0, string(cells)) {
		t.Errorf("web.0's row lacks its sparkline %q: %s", string(cells), web0)
	}
	// Half a minute of history: drawn on the right half.
	if n := len([]rune(spark)) - len(cells); n < sw/2-1 || n > sw/2+1 {
		t.Errorf("30 samples of 60 fill %d of %d cells: %q", len(cells), sw, spark)
	}
	// A worker with no figures: no sparkline, "-".
	job := row(t, m, "job.0")
	if strings.ContainsAny(job, string(sparkBlocks)) || !strings.Contains(job, "backing off") {
		t.Errorf("job.0's row: %s", job)
	}
	if !strings.Contains(lines(m)[1], "3 workers, 1 ready") {
		t.Errorf("summary: %s", lines(m)[1])
	}
}

// TestSortAndFilter: s sorts by the next key, / filters by service.
func TestSortAndFilter(t *testing.T) {
	m := newModel(nil)
	m.Update(statusMsg{view: view(
		worker("api", 0, 1, "ready", 1, 300),
		worker("web", 0, 2, "ready", 50, 100),
		worker("web", 1, 3, "ready", 20, 200),
	)})
	order := func() string {
		var names []string
		for _, w := range m.rows {
			names = append(names, w.Name())
		}
		return strings.Join(names, " ")
	}
	if got := order(); got != "api.0 web.0 web.1" {
		t.Errorf("by name: %s", got)
	}
	press(m, "s")
	if got := order(); got != "web.0 web.1 api.0" {
		t.Errorf("by cpu: %s", got)
	}
	press(m, "s")
	if got := order(); got != "api.0 web.1 web.0" {
		t.Errorf("by memory: %s", got)
	}
	press(m, "S")
	if got := order(); got != "web.0 web.1 api.0" {
		t.Errorf("by memory, reversed: %s", got)
	}
	press(m, "/", "w", "e", "enter")
	if got := order(); got != "web.0 web.1" {
		t.Errorf("filtered by we: %s", got)
	}
	if !strings.Contains(lines(m)[1], "3 workers, 3 ready, 2 shown") {
		t.Errorf("summary: %s", lines(m)[1])
	}
	press(m, "/", "esc")
	if got := order(); got != "web.0 web.1 api.0" {
		t.Errorf("filter cleared: %s", got)
	}
}

// TestRestartAsksThenRestartsTheSelected: r asks, y restarts the selected
// worker and shows what the restart said; any other key cancels.
func TestRestartAsksThenRestartsTheSelected(t *testing.T) {
	var asked []string
	m := newModel(func(ctx context.Context, w string) (string, error) {
		asked = append(asked, w)
		return "restarted " + w + ": 1 worker, one at a time\n  " + w + ": pid 2 -> 9", nil
	})
	m.Update(statusMsg{view: view(worker("web", 0, 2, "ready", 0, 0), worker("web", 1, 3, "ready", 0, 0))})
	press(m, "down", "r")
	if l := lines(m); !strings.Contains(l[len(l)-2], "restart web.1? ") {
		t.Fatalf("no prompt: %q", l[len(l)-2])
	}
	press(m, "n")
	if len(asked) != 0 || !strings.Contains(m.message, "cancelled") {
		t.Fatalf("n did not cancel: %v %q", asked, m.message)
	}
	press(m, "up", "r")
	_, cmd := m.Update(tea.KeyPressMsg{Code: 'y', Text: "y"})
	if cmd == nil {
		t.Fatal("y made no command")
	}
	if l := lines(m); !strings.Contains(l[len(l)-2], "restarting web.0") {
		t.Errorf("no progress shown: %q", l[len(l)-2])
	}
	m.Update(cmd())
	if len(asked) != 1 || asked[0] != "web.0" {
		t.Fatalf("restarted %v, want web.0", asked)
	}
	if l := lines(m); !strings.Contains(l[len(l)-2], "restarted web.0: 1 worker, one at a time; web.0: pid 2 -> 9") {
		t.Errorf("the restart's answer not shown: %q", l[len(l)-2])
	}
}

// TestStatusErrorKeepsTheLastRows: a failed status call keeps the rows
// and says they are stale; the next status call is scheduled either way.
func TestStatusErrorKeepsTheLastRows(t *testing.T) {
	m := newModel(nil)
	m.Update(statusMsg{view: view(worker("web", 0, 2, "ready", 1, 1))})
	_, cmd := m.Update(statusMsg{err: errors.New("no supervisor at x.ipc")})
	if cmd == nil {
		t.Error("no next status call after an error")
	}
	row(t, m, "web.0")
	if !strings.Contains(lines(m)[1], "stale: no supervisor at x.ipc") {
		t.Errorf("summary: %s", lines(m)[1])
	}
}

// TestPagerNeedsAConnectedWorker: d on a worker not connected says so,
// without running the pager.
func TestPagerNeedsAConnectedWorker(t *testing.T) {
	m := newModel(nil)
	ran := false
	m.opts.Pager = func(what, w string) *exec.Cmd { ran = true; return exec.Command("true") }
	w := worker("sh", 0, 7, "ready", 0, 0)
	w.ConnID = ""
	m.Update(statusMsg{view: view(w)})
	press(m, "d")
	if ran || !strings.Contains(m.message, "not connected") {
		t.Errorf("pager ran %v, message %q", ran, m.message)
	}
}

// TestHistoryKeepsAMinute: 60 samples, unknown ones as gaps.
func TestHistoryKeepsAMinute(t *testing.T) {
	var h history
	for i := range 100 {
		h.add(float64(i))
	}
	if len(h.samples) != HistoryLen || h.samples[0] != 40 {
		t.Fatalf("history %d samples from %v", len(h.samples), h.samples[0])
	}
	h.add(-1)
	if !math.IsNaN(h.samples[HistoryLen-1]) {
		t.Error("an unknown sample is not a gap")
	}
	if s := h.sparkline(60, 0, 100); []rune(s)[59] != ' ' {
		t.Errorf("the gap is drawn: %q", s)
	}
	lo, hi := h.memoryScale()
	if lo >= 41 || hi <= 99 {
		t.Errorf("memory scale %v..%v does not hold 41..99", lo, hi)
	}
}
