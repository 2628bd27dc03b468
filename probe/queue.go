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

	due     time.Time // of the next attempt, or of the one in flight
	index   int       // in the heap; -1 when not in it
	queued  bool      // in its lane, waiting for a free slot
	running bool      // an attempt is in flight
	removed bool

	lastPassed  bool
	consecutive int
	status      Status
}

// dueHeap is a min-heap of entries by due time (then handle, so that ties
// run in the order they were added), for container/heap.
type dueHeap []*entry

func (h dueHeap) Len() int { return len(h) }

func (h dueHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].handle < h[j].handle
	}
	return h[i].due.Before(h[j].due)
}

func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *dueHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *dueHeap) Pop() any {
	old := *h
	n := len(old) - 1
	e := old[n]
	old[n] = nil
	e.index = -1
	*h = old[:n]
	return e
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
