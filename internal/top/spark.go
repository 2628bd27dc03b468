package top

import (
	"math"
	"strings"
)

// HistoryLen is how many samples a worker's history keeps: a minute at one
// status call a second.
const HistoryLen = 60

// sparkBlocks are the eight heights of a sparkline's cell.
var sparkBlocks = []rune("▁▂▃▄▅▆▇█")

// history is the last HistoryLen samples of one figure of one worker,
// oldest first; NaN is a sample that was not known.
type history struct {
	samples []float64
}

// add appends a sample (negative: unknown), dropping the oldest beyond
// HistoryLen.
func (h *history) add(v float64) {
	if v < 0 {
		v = math.NaN()
	}
	if len(h.samples) == HistoryLen {
		copy(h.samples, h.samples[1:])
		h.samples = h.samples[:HistoryLen-1]
	}
	h.samples = append(h.samples, v)
}

// sparkline draws the history in width cells, the newest on the right:
// each cell the largest sample of its share of the minute, scaled from lo
// (the lowest block) to hi (the highest); a cell with no known sample is
// a space. A history shorter than the minute is drawn on the right,
// space-padded on the left.
func (h *history) sparkline(width int, lo, hi float64) string {
	if width <= 0 {
		return ""
	}
	per := float64(HistoryLen) / float64(width) // samples a cell covers
	var b strings.Builder
	offset := HistoryLen - len(h.samples) // missing samples, on the left
	for c := range width {
		from, to := int(float64(c)*per), int(float64(c+1)*per)
		to = max(to, from+1)
		cell := math.NaN()
		for i := from; i < to; i++ {
			j := i - offset
			if j < 0 || j >= len(h.samples) || math.IsNaN(h.samples[j]) {
				continue
			}
			if math.IsNaN(cell) || h.samples[j] > cell {
				cell = h.samples[j]
			}
		}
		if math.IsNaN(cell) {
			b.WriteByte(' ')
			continue
		}
		level := 0
		if hi > lo {
			level = int(math.Round((cell - lo) / (hi - lo) * float64(len(sparkBlocks)-1)))
		}
		level = min(max(level, 0), len(sparkBlocks)-1)
		b.WriteRune(sparkBlocks[level])
	}
	return b.String()
}

// bounds are the smallest and largest known samples (0, 0 for none).
func (h *history) bounds() (lo, hi float64) {
	first := true
	for _, v := range h.samples {
		if math.IsNaN(v) {
			continue
		}
		if first {
			lo, hi, first = v, v, false
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// cpuScale is the range a CPU sparkline is drawn in: from 0 to the
// largest sample, at least 1%.
func (h *history) cpuScale() (lo, hi float64) {
	_, hi = h.bounds()
	return 0, max(hi, 1)
}

// memoryScale is the range a memory sparkline is drawn in: around the
// samples, with room of half their spread (at least a tenth of the largest)
// on either side, so that a flat line is drawn halfway and noise stays
// small while a leak climbs.
func (h *history) memoryScale() (lo, hi float64) {
	lo, hi = h.bounds()
	pad := max(hi-lo, hi/10) / 2
	return lo - pad, hi + pad
}
