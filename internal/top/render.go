package top

import (
	"fmt"
	"strconv"
	"strings"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/vigild/vigil/internal/statusview"
)

// The screen: headerLines lines above the rows (the title, a summary, the
// columns' headings), footerLines below (a message or prompt, the keys).
const (
	headerLines = 3
	footerLines = 2
)

var (
	styleTitle    = lipgloss.NewStyle().Bold(true)
	styleHeading  = lipgloss.NewStyle().Bold(true).Reverse(true)
	styleSelected = lipgloss.NewStyle().Reverse(true)
	styleDim      = lipgloss.NewStyle().Faint(true)
	styleError    = lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true)
	stateStyles   = map[string]lipgloss.Style{
		"ready":       lipgloss.NewStyle().Foreground(lipgloss.Color("2")),
		"starting":    lipgloss.NewStyle().Foreground(lipgloss.Color("3")),
		"backing off": lipgloss.NewStyle().Foreground(lipgloss.Color("3")),
		"unhealthy":   lipgloss.NewStyle().Foreground(lipgloss.Color("1")),
		"stopping":    lipgloss.NewStyle().Foreground(lipgloss.Color("1")),
		"failed":      lipgloss.NewStyle().Foreground(lipgloss.Color("1")),
	}
)

// column is one column of the table.
type column struct {
	title string
	width int
	right bool
}

// sparkWidth is the sparklines' width for the screen's width.
func (m *Model) sparkWidth() int {
	return min(max((m.width-90)/2, 10), 30)
}

// View draws the screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "vigil top"
	return v
}

// render draws the screen as text.
func (m *Model) render() string {
	now := m.opts.Now()
	sw := m.sparkWidth()
	cols := []column{
		{"WORKER", 12, false}, {"PID", 7, true}, {"STATE", 12, false}, {"UPTIME", 7, true}, {"RESTARTS", 8, true},
		{"CPU", 7, true}, {"CPU " + sparkSpan(sw), sw, false}, {"PRIVATE", 10, true}, {"PRIVATE " + sparkSpan(sw), sw, false},
	}
	for _, w := range m.rows {
		cols[0].width = max(cols[0].width, lipgloss.Width(w.Name()))
	}
	var b strings.Builder
	// Title and summary.
	ready := 0
	if m.view != nil {
		for _, w := range m.view.Workers {
			if w.State == "ready" {
				ready++
			}
		}
	}
	title := fmt.Sprintf("vigil top  %s  %s", m.opts.Title, m.at.Format("15:04:05"))
	b.WriteString(fit(styleTitle.Render(title), m.width))
	b.WriteByte('\n')
	var summary string
	switch {
	case m.view == nil && m.err != nil:
		summary = styleError.Render(oneLine(m.err.Error()))
	case m.view == nil:
		summary = "reading the status..."
	default:
		summary = fmt.Sprintf("%d workers, %d ready", len(m.view.Workers), ready)
		if len(m.rows) != len(m.view.Workers) {
			summary += fmt.Sprintf(", %d shown", len(m.rows))
		}
		summary += fmt.Sprintf("   sort: %s", sortNames[m.sort])
		if m.reverse {
			summary += " (reversed)"
		}
		if m.filter != "" || m.filtering {
			summary += "   service: " + m.filter
			if m.filtering {
				summary += "_"
			}
		}
		if m.err != nil {
			summary += "   " + styleError.Render("stale: "+oneLine(m.err.Error()))
		}
		if m.view.Controller == nil {
			summary += "   " + styleDim.Render("(no controller registered)")
		}
	}
	b.WriteString(fit(summary, m.width))
	b.WriteByte('\n')
	// Headings.
	cells := make([]string, len(cols))
	for i, c := range cols {
		cells[i] = pad(c.title, c.width, c.right)
	}
	b.WriteString(styleHeading.Render(fit(strings.Join(cells, " "), m.width)))
	b.WriteByte('\n')
	// Rows.
	visible := max(m.height-headerLines-footerLines, 1)
	shown := 0
	for i := m.top; i < len(m.rows) && shown < visible; i++ {
		w := m.rows[i]
		k := key(w)
		pid := "-"
		if w.PID > 0 {
			pid = strconv.Itoa(w.PID)
		}
		restarts := "-"
		if w.Restarts >= 0 {
			restarts = strconv.Itoa(w.Restarts)
		}
		state := w.StateText(now)
		var cpuLine, memLine string
		if h := m.cpu[k]; h != nil {
			lo, hi := h.cpuScale()
			cpuLine = h.sparkline(sw, lo, hi)
		}
		if h := m.private[k]; h != nil {
			lo, hi := h.memoryScale()
			memLine = h.sparkline(sw, lo, hi)
		}
		cells := []string{
			pad(w.Name(), cols[0].width, false), pad(pid, cols[1].width, true), pad(state, cols[2].width, false),
			pad(statusview.FormatUptime(w.Uptime), cols[3].width, true), pad(restarts, cols[4].width, true),
			pad(statusview.FormatCPU(w.CPU), cols[5].width, true), pad(cpuLine, cols[6].width, false),
			pad(statusview.FormatSize(w.Private), cols[7].width, true), pad(memLine, cols[8].width, false),
		}
		line := fit(strings.Join(cells, " "), m.width)
		if k == m.selected {
			line = styleSelected.Render(line)
		} else if st, ok := stateStyles[w.State]; ok {
			// The state in its colour: the cell is re-rendered in place.
			cells[2] = st.Render(cells[2])
			line = fit(strings.Join(cells, " "), m.width)
		}
		b.WriteString(line)
		b.WriteByte('\n')
		shown++
	}
	for ; shown < visible; shown++ {
		b.WriteByte('\n')
	}
	// The message or prompt, and the keys.
	switch {
	case m.filtering:
		b.WriteString(fit("service filter: "+m.filter+"_   (enter: keep, esc: clear)", m.width))
	case m.confirm != "":
		b.WriteString(fit(styleTitle.Render("restart "+m.confirm+"? its replacement starts first (y/n)"), m.width))
	case m.busy != "":
		b.WriteString(fit(m.busy+"...", m.width))
	default:
		b.WriteString(fit(m.message, m.width))
	}
	b.WriteByte('\n')
	b.WriteString(styleDim.Render(fit("↑↓ select  s sort  S reverse  / service  r restart  d goroutines  l logs  q quit", m.width)))
	return b.String()
}

// sparkSpan labels a sparkline's column.
func sparkSpan(width int) string {
	if width < 8 {
		return ""
	}
	return "(1 min)"
}

// pad pads s to width cells, on the left when right.
func pad(s string, width int, right bool) string {
	n := lipgloss.Width(s)
	if n >= width {
		return s
	}
	if right {
		return strings.Repeat(" ", width-n) + s
	}
	return s + strings.Repeat(" ", width-n)
}

// fit cuts s to width cells.
func fit(s string, width int) string {
	if width <= 0 || lipgloss.Width(s) <= width {
		return s
	}
	return lipgloss.NewStyle().MaxWidth(width).Render(s)
}
