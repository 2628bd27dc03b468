package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/vigild/vigil/internal/statusview"
)

// useColour reports whether output to w gets colour: only on a terminal,
// never with NO_COLOR set (https://no-color.org) or TERM=dumb.
func useColour(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return writerIsTerminal(w)
}

func writerIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f.Fd())
}

// ANSI colours of the states.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiDim    = "\x1b[2m"
	ansiBold   = "\x1b[1m"
)

// stateColour is the colour of a worker's state.
func stateColour(state string) string {
	switch state {
	case "ready":
		return ansiGreen
	case "starting", "backing off":
		return ansiYellow
	case "unhealthy", "stopping", "failed":
		return ansiRed
	case "stopped":
		return ansiDim
	}
	return ""
}

// failedLines says why each failed worker failed, and how to start it
// again: one line each, "" when none failed.
func failedLines(v *statusview.View) string {
	var b strings.Builder
	for _, w := range v.Workers {
		if w.State != "failed" {
			continue
		}
		why := w.LastError
		if why == "" {
			why = "no reason given"
		}
		fmt.Fprintf(&b, "%s failed: %s (vigil start %s retries)\n", w.Name(), why, w.Name())
	}
	return b.String()
}

// table lays out rows of cells in aligned columns. Columns have a minimum
// width, so that a layout does not shift with the values; right-aligned
// columns are for numbers. A colour applies to one cell after padding.
type table struct {
	headers []string
	minW    []int
	right   []bool
	rows    [][]string
	colours [][]string
}

func (t *table) add(cells []string, colours []string) {
	t.rows = append(t.rows, cells)
	t.colours = append(t.colours, colours)
}

func (t *table) write(w io.Writer, colour bool) error {
	widths := make([]int, len(t.headers))
	for i, h := range t.headers {
		widths[i] = max(utf8.RuneCountInString(h), t.minW[i])
	}
	for _, r := range t.rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	line := func(cells []string, colours []string, header bool) {
		for i, c := range cells {
			last := i == len(cells)-1
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			cell := c + pad
			if t.right[i] {
				cell = pad + c
			}
			if last && !t.right[i] {
				cell = c // no trailing spaces
			}
			col := ""
			if colour && colours != nil {
				col = colours[i]
			}
			if colour && header {
				col = ansiBold
			}
			if col != "" {
				cell = col + cell + ansiReset
			}
			b.WriteString(cell)
			if !last {
				b.WriteString("  ")
			}
		}
		b.WriteByte('\n')
	}
	line(t.headers, nil, true)
	for i, r := range t.rows {
		line(r, t.colours[i], false)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
