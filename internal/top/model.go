// Package top is `vigil top`: a live, full-screen view of the workers for
// a terminal, built on Bubble Tea (github.com/charmbracelet/bubbletea, v2)
// and Lip Gloss. One row per worker (state, uptime, restarts, CPU and
// private memory, each with a sparkline of the last minute), sorted by a
// key, filtered by service; a worker selected can be restarted, or its
// goroutines or logs read in the pager.
//
// It reads the supervisor through the same status call as `vigil status`,
// once a second, one call at a time: nothing more. The model is Bubble
// Tea's: state changes only in Update, from messages (a status that came,
// a key, the end of an action), so a test drives it with messages and
// reads View.
package top

import (
	"cmp"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/vigild/vigil/internal/statusview"
)

// DefaultInterval is how often the status is read.
const DefaultInterval = time.Second

// Options are what the view needs from the command line.
type Options struct {
	// Title names what is watched (the socket).
	Title string
	// Interval is the time between two status calls (default
	// DefaultInterval): the next is made this long after the last answer.
	Interval time.Duration
	// Status makes one status call.
	Status func(ctx context.Context) (*statusview.View, error)
	// Restart restarts a worker (SERVICE.INSTANCE) as `vigil restart`
	// does, and says what it did.
	Restart func(ctx context.Context, worker string) (string, error)
	// Pager returns the command that shows a worker's goroutines
	// ("goroutines") or logs ("logs") in the pager; nil: not offered.
	Pager func(what, worker string) *exec.Cmd
	// Filter shows only the services whose name contains it, at first.
	Filter string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// sortKey is a column the rows are sorted by.
type sortKey int

const (
	byName sortKey = iota
	byCPU
	byMemory
	byRestarts
	byUptime
	sortKeys
)

var sortNames = [...]string{"name", "cpu", "memory", "restarts", "uptime"}

// Model is the state of the view.
type Model struct {
	opts Options
	ctx  context.Context

	view     *statusview.View
	at       time.Time // when view came
	err      error     // the last status call's error
	cpu      map[string]*history
	private  map[string]*history
	rows     []*statusview.Worker // sorted and filtered
	selected string               // the selected row's key
	top      int                  // the first row shown

	sort      sortKey
	reverse   bool
	filter    string
	filtering bool   // typing the filter
	confirm   string // the worker a restart waits to be confirmed for
	busy      string // the action running
	message   string // what the last action said
	width     int
	height    int
}

// New returns the model; ctx bounds its calls.
func New(ctx context.Context, opts Options) *Model {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Model{opts: opts, ctx: ctx, cpu: map[string]*history{}, private: map[string]*history{}, width: 120, height: 30, filter: opts.Filter}
}

// Messages.
type (
	// statusMsg is a status call's answer.
	statusMsg struct {
		view *statusview.View
		err  error
		at   time.Time
	}
	// tickMsg asks for the next status call.
	tickMsg struct{}
	// doneMsg is the end of an action.
	doneMsg struct {
		message string
		err     error
	}
)

// Init makes the first status call.
func (m *Model) Init() tea.Cmd { return m.fetch() }

// fetch makes one status call.
func (m *Model) fetch() tea.Cmd {
	return func() tea.Msg {
		v, err := m.opts.Status(m.ctx)
		return statusMsg{view: v, err: err, at: m.opts.Now()}
	}
}

// key identifies a worker across status calls (and its restarts).
func key(w *statusview.Worker) string {
	if w.Service != "" && w.Instance >= 0 {
		return w.Name()
	}
	return w.Name() + "#" + w.ConnID
}

// Update applies a message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case statusMsg:
		m.at = msg.at
		m.err = msg.err
		if msg.err == nil {
			m.view = msg.view
			m.record()
		}
		m.arrange()
		return m, tea.Tick(m.opts.Interval, func(time.Time) tea.Msg { return tickMsg{} })
	case tickMsg:
		return m, m.fetch()
	case doneMsg:
		m.busy = ""
		if msg.err != nil {
			m.message = "error: " + oneLine(msg.err.Error())
		} else {
			m.message = oneLine(msg.message)
		}
		return m, nil
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.arrange()
		return m, nil
	case tea.KeyPressMsg:
		return m.key(msg)
	}
	return m, nil
}

// record adds each worker's figures to its history; the histories of
// workers gone are dropped.
func (m *Model) record() {
	seen := make(map[string]bool, len(m.view.Workers))
	for _, w := range m.view.Workers {
		k := key(w)
		seen[k] = true
		for _, h := range []struct {
			hs map[string]*history
			v  float64
		}{{m.cpu, w.CPU}, {m.private, w.Private}} {
			if h.hs[k] == nil {
				h.hs[k] = &history{}
			}
			h.hs[k].add(h.v)
		}
	}
	for k := range m.cpu {
		if !seen[k] {
			delete(m.cpu, k)
			delete(m.private, k)
		}
	}
}

// arrange filters and sorts the rows, and keeps the selection in view.
func (m *Model) arrange() {
	m.rows = m.rows[:0]
	if m.view != nil {
		for _, w := range m.view.Workers {
			if m.filter == "" || strings.Contains(w.Service, m.filter) {
				m.rows = append(m.rows, w)
			}
		}
	}
	slices.SortStableFunc(m.rows, func(a, b *statusview.Worker) int {
		c := 0
		switch m.sort {
		case byCPU:
			c = cmp.Compare(b.CPU, a.CPU)
		case byMemory:
			c = cmp.Compare(b.Private, a.Private)
		case byRestarts:
			c = cmp.Compare(b.Restarts, a.Restarts)
		case byUptime:
			c = cmp.Compare(b.Uptime, a.Uptime)
		}
		if c == 0 {
			c = cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Instance, b.Instance), cmp.Compare(a.PID, b.PID))
		}
		if m.reverse {
			c = -c
		}
		return c
	})
	i := m.selectedIndex()
	if i < 0 && len(m.rows) > 0 {
		i = 0
		m.selected = key(m.rows[0])
	}
	// Keep the selection on the screen.
	visible := max(m.height-headerLines-footerLines, 1)
	if i >= 0 {
		if i < m.top {
			m.top = i
		}
		if i >= m.top+visible {
			m.top = i - visible + 1
		}
	}
	m.top = min(max(m.top, 0), max(len(m.rows)-visible, 0))
}

// selectedIndex is the selected row's place, or -1.
func (m *Model) selectedIndex() int {
	for i, w := range m.rows {
		if key(w) == m.selected {
			return i
		}
	}
	return -1
}

// selectedWorker is the selected row, or nil.
func (m *Model) selectedWorker() *statusview.Worker {
	if i := m.selectedIndex(); i >= 0 {
		return m.rows[i]
	}
	return nil
}

// move moves the selection by n rows.
func (m *Model) move(n int) {
	if len(m.rows) == 0 {
		return
	}
	i := min(max(m.selectedIndex()+n, 0), len(m.rows)-1)
	m.selected = key(m.rows[i])
	m.arrange()
}

// key applies a key.
func (m *Model) key(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	s := k.String()
	if m.filtering {
		switch s {
		case "enter":
			m.filtering = false
		case "esc":
			m.filtering, m.filter = false, ""
		case "backspace":
			if r := []rune(m.filter); len(r) > 0 {
				m.filter = string(r[:len(r)-1])
			}
		case "ctrl+c":
			return m, tea.Quit
		default:
			if k.Text != "" {
				m.filter += k.Text
			}
		}
		m.arrange()
		return m, nil
	}
	if m.confirm != "" {
		worker := m.confirm
		m.confirm = ""
		if s == "y" || s == "Y" {
			return m, m.restart(worker)
		}
		m.message = "restart of " + worker + " cancelled"
		return m, nil
	}
	switch s {
	case "q", "ctrl+c", "esc":
		return m, tea.Quit
	case "up", "k":
		m.move(-1)
	case "down", "j":
		m.move(1)
	case "pgup":
		m.move(-max(m.height-headerLines-footerLines, 1))
	case "pgdown", "space":
		m.move(max(m.height-headerLines-footerLines, 1))
	case "home", "g":
		m.move(-len(m.rows))
	case "end", "G":
		m.move(len(m.rows))
	case "s":
		m.sort = (m.sort + 1) % sortKeys
		m.arrange()
	case "S":
		m.reverse = !m.reverse
		m.arrange()
	case "/":
		m.filtering = true
	case "r":
		if w := m.actionTarget("restart"); w != "" {
			m.confirm = w
		}
	case "d":
		return m, m.page("goroutines")
	case "l":
		return m, m.page("logs")
	}
	return m, nil
}

// actionTarget is the selected worker's name for an action, or "" (and a
// message saying why not).
func (m *Model) actionTarget(what string) string {
	w := m.selectedWorker()
	switch {
	case m.busy != "":
		m.message = "wait: " + m.busy
		return ""
	case w == nil:
		m.message = "no worker selected"
		return ""
	case w.Service == "" || w.Instance < 0 || w.Controller:
		m.message = fmt.Sprintf("%s: %s needs one of the controller's workers", w.Describe(), what)
		return ""
	}
	return w.Name()
}

// restart restarts a worker, showing that it is under way.
func (m *Model) restart(worker string) tea.Cmd {
	m.busy = "restarting " + worker + " (its replacement must be ready first)"
	m.message = ""
	return func() tea.Msg {
		out, err := m.opts.Restart(m.ctx, worker)
		return doneMsg{message: out, err: err}
	}
}

// page shows a worker's goroutines or logs in the pager, the view
// suspended meanwhile.
func (m *Model) page(what string) tea.Cmd {
	if m.opts.Pager == nil {
		m.message = what + ": no pager"
		return nil
	}
	w := m.actionTarget(what)
	if w == "" {
		return nil
	}
	if what == "goroutines" {
		if sw := m.selectedWorker(); sw.ConnID == "" {
			m.message = sw.Describe() + " is not connected to the supervisor: it cannot dump its goroutines"
			return nil
		}
	}
	return tea.ExecProcess(m.opts.Pager(what, w), func(err error) tea.Msg {
		if err != nil {
			return doneMsg{err: fmt.Errorf("%s of %s: %w", what, w, err)}
		}
		return doneMsg{message: ""}
	})
}

// oneLine joins a message's lines.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")), " ")
}
