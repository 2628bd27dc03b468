package probe

import (
	"context"
	"time"
)

// entry is one registered probe. All its fields but the immutable ones
// (handle, spec, chk, ctx, lane) belong to the scheduler's loop goroutine.
type entry struct {
	handle Handle
	spec   Spec // with defaults
	chk    checker
	lane   int
	// ctx lives as long as the registration: Remove and the scheduler's
	// stop cancel it, which interrupts an attempt in flight.
	ctx    context.Context
	cancel context.CancelFunc

	// ideal is when the next attempt (or the one in flight) falls due, from
	// the epoch: the first at InitialDelay, then every Interval. due is
	// ideal moved back onto the grid (Options.Coalesce), when it starts.
	ideal   time.Duration
	due     time.Duration
	queued  bool // in its lane, waiting for a free slot
	running bool // an attempt is in flight
	removed bool

	lastPassed  bool
	consecutive int
	status      Status

	sent    Status // in the last result sent; StatusUnknown before any
	result  Result // the next to send, when pending
	pending bool
	inOut   bool // in the scheduler's out line
}

// dueHeap is a binary min-heap of entries by due time, then handle (so
// that ties run in the order they were added). The keys sit in the heap's
// array, so that sifting touches no entry. A removed entry stays in it
// until its due time, and is then dropped, unless removed entries come to
// be half of it: then they are swept out at once.
type dueHeap struct {
	items []dueItem
	stale int // removed entries still in items
}

type dueItem struct {
	due    time.Duration
	handle Handle
	e      *entry
}

func (a dueItem) before(b dueItem) bool {
	return a.due < b.due || a.due == b.due && a.handle < b.handle
}

func (h *dueHeap) len() int { return len(h.items) }

// top is the earliest item; the heap is not empty.
func (h *dueHeap) top() dueItem { return h.items[0] }

func (h *dueHeap) push(e *entry) {
	h.items = append(h.items, dueItem{due: e.due, handle: e.handle, e: e})
	h.up(len(h.items) - 1)
}

func (h *dueHeap) pop() *entry {
	q := h.items
	e := q[0].e
	n := len(q) - 1
	q[0] = q[n]
	q[n] = dueItem{}
	h.items = q[:n]
	h.down(0)
	return e
}

func (h *dueHeap) up(i int) {
	q := h.items
	for i > 0 {
		parent := (i - 1) / 2
		if !q[i].before(q[parent]) {
			break
		}
		q[i], q[parent] = q[parent], q[i]
		i = parent
	}
}

func (h *dueHeap) down(i int) {
	q := h.items
	n := len(q)
	for {
		least, l, r := i, 2*i+1, 2*i+2
		if l < n && q[l].before(q[least]) {
			least = l
		}
		if r < n && q[r].before(q[least]) {
			least = r
		}
		if least == i {
			return
		}
		q[i], q[least] = q[least], q[i]
		i = least
	}
}

// compact sweeps the removed entries out when they are half the heap (and
// more than a few).
func (h *dueHeap) compact() {
	if h.stale < 64 || 2*h.stale < len(h.items) {
		return
	}
	kept := h.items[:0]
	for _, it := range h.items {
		if !it.e.removed {
			kept = append(kept, it)
		}
	}
	clear(h.items[len(kept):])
	h.items, h.stale = kept, 0
	for i := len(kept)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// fifo is a first-in first-out queue that reuses its backing array.
type fifo[T any] struct {
	items []T
	head  int
}

func (q *fifo[T]) len() int { return len(q.items) - q.head }

func (q *fifo[T]) push(v T) {
	if q.head > 0 && q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	q.items = append(q.items, v)
}

func (q *fifo[T]) front() T { return q.items[q.head] }

func (q *fifo[T]) pop() T {
	var zero T
	v := q.items[q.head]
	q.items[q.head] = zero
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return v
}

// filter keeps the items for which keep returns true, in order.
func (q *fifo[T]) filter(keep func(T) bool) {
	var zero T
	kept := q.items[:0]
	for _, v := range q.items[q.head:] {
		if keep(v) {
			kept = append(kept, v)
		}
	}
	for i := len(kept); i < len(q.items); i++ {
		q.items[i] = zero
	}
	q.items, q.head = kept, 0
}
