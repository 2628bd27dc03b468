package logs

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ringBytes bounds a ring's memory whatever its line count: the last
// lines up to this many bytes (plus the one batch that straddles it).
const ringBytes = 1 << 20

// ring keeps the last lines of one stream of one process: the batches
// that hold them, the oldest partly skipped. The capture's reader appends;
// queries read; a mutex keeps them apart for the time of a slice copy.
type ring struct {
	mu       sync.Mutex
	batches  []*batch
	skip     int // lines of batches[0] no longer kept
	lines    int // lines kept
	bytes    int // bytes of the batches held
	maxLines int
}

// append takes b, numbering it from seq under the ring's lock so that
// within a ring the numbers follow the order of the lines.
func (r *ring) append(b *batch, seq *atomic.Uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b.seq = seq.Add(1)
	r.batches = append(r.batches, b)
	r.lines += b.lines
	r.bytes += len(b.data)
	// Whole batches go while what is left still holds maxLines.
	for len(r.batches) > 1 {
		first := r.batches[0]
		left := first.lines - r.skip
		if r.lines-left < r.maxLines && r.bytes-len(first.data) < ringBytes {
			break
		}
		r.batches[0] = nil
		r.batches = r.batches[1:]
		r.lines -= left
		r.bytes -= len(first.data)
		r.skip = 0
	}
	if r.lines > r.maxLines {
		r.skip += r.lines - r.maxLines
		r.lines = r.maxLines
	}
	if cap(r.batches) > 64 && len(r.batches) < cap(r.batches)/4 {
		r.batches = slices.Clone(r.batches) // let the array's front go
	}
}

// snapshot returns the batches kept and how many lines of the first to
// skip, and the number of the last batch.
func (r *ring) snapshot() ([]*batch, int, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var last uint64
	if n := len(r.batches); n > 0 {
		last = r.batches[n-1].seq
	}
	return slices.Clone(r.batches), r.skip, last
}

// linesSince appends the ring's lines read at or after since (zero: all)
// and numbered after after, the last n of them (0: all), to out, and returns the number of the ring's last
// batch.
func (r *ring) linesSince(out []Line, since time.Time, after uint64, n int) ([]Line, uint64) {
	batches, skip, last := r.snapshot()
	// Leave out whole batches before since or up to after, then batches
	// the last n do not reach.
	first := 0
	for first < len(batches) && (batches[first].time.Before(since) || batches[first].seq <= after) {
		first++
	}
	if first > 0 {
		skip = 0
	}
	if n > 0 {
		count := 0
		for i := len(batches) - 1; i >= first; i-- {
			avail := batches[i].lines
			if i == first {
				avail -= skip
			}
			count += avail
			if count >= n {
				if i > first {
					skip = 0
				}
				first = i
				skip += count - n
				break
			}
		}
	}
	for i := first; i < len(batches); i++ {
		s := 0
		if i == first {
			s = skip
		}
		out = batches[i].appendLines(out, s)
	}
	return out, last
}
