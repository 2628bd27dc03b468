package logs

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// DefaultFollowBuffer is how many lines a follower may have waiting before
// it loses lines.
const DefaultFollowBuffer = 10000

// ErrSubscriptionClosed is returned by [Subscription.Next] after Close.
var ErrSubscriptionClosed = errors.New("logs: subscription closed")

// Subscription receives the lines of a [Hub.Follow] as they are read. A
// follower that does not keep up loses lines, and is told how many;
// it never slows a capture down.
type Subscription struct {
	hub    *Hub
	query  Query
	buffer int

	mu      sync.Mutex
	history []Line
	queue   []*batch
	queued  int // lines in queue
	lost    uint64
	skip    map[*ring]uint64 // batches up to these numbers came in history
	closed  bool
	signal  chan struct{}
}

// Follow returns a subscription to the lines q selects (Since, N and
// Previous apply to the lines already kept, which the first Next returns;
// the live lines come from whichever process an instance runs, across
// restarts). buffer bounds the lines waiting for Next (0 =
// DefaultFollowBuffer). No line is returned twice or missed between the
// kept ones and the live ones. Close the subscription when done.
func (h *Hub) Follow(q Query, buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultFollowBuffer
	}
	if q.Instance != nil {
		n := *q.Instance
		q.Instance = &n
	}
	s := &Subscription{hub: h, query: q, buffer: buffer, signal: make(chan struct{}, 1)}
	h.mu.Lock()
	var subs []*Subscription
	if p := h.subs.Load(); p != nil {
		subs = slices.Clone(*p)
	}
	subs = append(subs, s)
	h.subs.Store(&subs)
	h.mu.Unlock()
	// Registered first, then the history: a batch kept in both is known by
	// its number, since a ring numbers its batches in order.
	history, last := h.lines(&q)
	s.mu.Lock()
	s.history, s.skip = history, last
	s.mu.Unlock()
	return s
}

// publish shows b to the followers that want it.
func (h *Hub) publish(b *batch) {
	p := h.subs.Load()
	if p == nil {
		return
	}
	for _, s := range *p {
		if s.query.matches(b.cap.id) && (s.query.Stream == 0 || s.query.Stream == b.stream) {
			s.push(b)
		}
	}
}

func (s *Subscription) push(b *batch) {
	s.mu.Lock()
	if s.queued+b.lines > s.buffer {
		s.lost += uint64(b.lines)
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, b)
	s.queued += b.lines
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// Next returns the next lines, oldest first: the kept ones at first, then
// the live ones as they come. lost is how many lines were lost right after
// these because the follower fell behind (its buffer was full until this
// Next): a follower shows a marker after them. It waits until there is
// something to return, ctx ends (its error), or the subscription is closed
// ([ErrSubscriptionClosed]).
func (s *Subscription) Next(ctx context.Context) (lines []Line, lost uint64, err error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, 0, ErrSubscriptionClosed
		}
		lines, s.history = s.history, nil
		queue := s.queue
		s.queue, s.queued = nil, 0
		lost, s.lost = s.lost, 0
		skip := s.skip
		s.mu.Unlock()
		for _, b := range queue {
			if b.seq <= skip[&b.cap.rings[b.stream-1]] {
				continue
			}
			lines = b.appendLines(lines, 0)
		}
		if len(lines) > 0 || lost > 0 {
			return lines, lost, nil
		}
		select {
		case <-s.signal:
		case <-ctx.Done():
			return nil, 0, context.Cause(ctx)
		}
	}
}

// Close ends the subscription.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	if p := h.subs.Load(); p != nil {
		subs := slices.DeleteFunc(slices.Clone(*p), func(x *Subscription) bool { return x == s })
		h.subs.Store(&subs)
	}
	h.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.queue, s.history = nil, nil
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}
