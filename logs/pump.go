package logs

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// sink is a destination: deliver queues a batch and never blocks; it
// returns false when the batch was dropped.
type sink interface {
	deliver(b *batch) bool
}

// pump is a destination's queue and the goroutine that empties it: it
// queues batches up to a byte bound and drops whole batches beyond it (the
// capture counts their lines), and hands what is queued to write, all at
// once, from its goroutine. A write that blocks only holds up this
// destination.
type pump struct {
	name  string
	max   int
	write func([]*batch) // run by the pump's goroutine only
	abort func()         // ends a blocked write, when close gives up (may be nil)
	dest  destination
	// After a write of fewer than gatherBelow bytes, the goroutine waits
	// gather before the next (0: never), or until the queue is a quarter
	// full.
	gatherBelow int
	gather      time.Duration
	filling     chan struct{} // ends a gathering wait: the queue is a quarter full

	mu        sync.Mutex
	queue     []*batch
	bytes     int
	inflight  []*batch
	closed    bool
	abandoned bool

	wake chan struct{}
	done chan struct{}

	// lost counts the lines refused because the queue was full, since the
	// destination last said so (the console says it in its output).
	lost atomic.Uint64
}

func newPump(name string, max int, dest destination, write func([]*batch), abort func()) *pump {
	p := &pump{name: name, max: max, write: write, abort: abort, dest: dest,
		wake: make(chan struct{}, 1), done: make(chan struct{}), filling: make(chan struct{}, 1)}
	go p.run()
	return p
}

func (p *pump) deliver(b *batch) bool {
	p.mu.Lock()
	if p.closed || p.bytes+len(b.data) > p.max {
		p.mu.Unlock()
		p.lost.Add(uint64(b.lines))
		return false
	}
	p.queue = append(p.queue, b)
	p.bytes += len(b.data)
	filling := p.bytes > p.max/4
	p.mu.Unlock()
	if filling {
		select {
		case p.filling <- struct{}{}:
		default:
		}
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return true
}

func (p *pump) run() {
	defer close(p.done)
	var spare []*batch
	var timer *time.Timer
	for {
		p.mu.Lock()
		if p.abandoned {
			p.mu.Unlock()
			return
		}
		var todo []*batch
		if len(p.queue) > 0 {
			todo, p.queue = p.queue, spare[:0]
			p.bytes = 0
			p.inflight = todo
		}
		closed := p.closed
		p.mu.Unlock()
		if len(todo) > 0 {
			size := 0
			for _, b := range todo {
				size += len(b.data)
			}
			p.write(todo)
			p.mu.Lock()
			if p.abandoned { // close counted these as dropped
				p.mu.Unlock()
				return
			}
			p.inflight = nil
			p.mu.Unlock()
			clear(todo)
			spare = todo
			if size < p.gatherBelow && !closed {
				// Gather: wait, unless the queue fills meanwhile (a burst).
				if timer == nil {
					timer = time.NewTimer(p.gather)
				} else {
					timer.Reset(p.gather)
				}
				select {
				case <-timer.C:
				case <-p.filling:
					timer.Stop()
				}
			}
			continue
		}
		if closed {
			return
		}
		<-p.wake
	}
}

// close writes what is queued and stops the goroutine; when ctx ends first
// it gives up, counts the lines not written as dropped by their captures,
// and calls abort, which must end a write in progress; without abort, the
// goroutine ends when the write in progress returns.
func (p *pump) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	select { // a gathering wait ends too
	case p.filling <- struct{}{}:
	default:
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	lines := 0
	if !p.abandoned {
		p.abandoned = true
		for _, b := range append(p.queue, p.inflight...) {
			b.cap.dropped[p.dest].Add(uint64(b.lines))
			lines += b.lines
		}
		p.queue = nil
	}
	p.mu.Unlock()
	if p.abort != nil {
		p.abort()
		<-p.done // abort ends the write in progress
	}
	return fmt.Errorf("%s: %d lines not written: %w", p.name, lines, context.Cause(ctx))
}
