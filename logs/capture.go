package logs

import (
	"bytes"
	"context"
	"os"
	"sync/atomic"
	"time"
)

// Reading.
const (
	// minReadSize is how much one read may take from a pipe at first;
	// each read that fills it makes it 4 times larger, up to readSize
	// (the poller's shrinks again while reads bring little).
	minReadSize = 4 << 10
	readSize    = 256 << 10
	// pipeSize is the capacity a capture asks for a pipe once its child
	// has written to it, so that the child may write for a while between
	// two reads: 1 MiB, the most an unprivileged process gets by default
	// (/proc/sys/fs/pipe-max-size). A pipe nobody writes to keeps the
	// size the kernel gave it: grown at once, a thousand quiet workers'
	// pipes took 2 GB of pipe memory off the user's share
	// (/proc/sys/fs/pipe-user-pages-soft, 64 MiB), past which the kernel
	// makes every new pipe of an unprivileged user 8 KiB and grows none;
	// and the pipes written to grow only within half that share (see
	// pipeShare).
	pipeSize = 1 << 20
	// gatherBytes is how much a read after a wait aims to bring.
	gatherBytes = 128 << 10
	// burstRate is the fastest a child may start writing, from idle, in
	// bytes a second, without ever waiting on a full pipe while the reader
	// waits.
	burstRate = 200 << 20
	// rateMargin: a child that has written at a steady pace for a while
	// may then write this many times faster (up to burstRate) without
	// ever waiting on a full pipe. (At 100, a child writing a steady
	// 100 KB/s into a 1 MiB pipe sat on the edge of the 100 ms wait: each
	// small swing of its pace gave a wait a little shorter, off the grid
	// its neighbours share, see gridWake.)
	rateMargin = 50
	// minReadDelay is the shortest wait worth a timer; maxReadDelay the
	// longest, which bounds how late a line's time and a follower may be.
	minReadDelay = 50 * time.Microsecond
	maxReadDelay = 100 * time.Millisecond
)

// readPace is how long a reader waits between reads of one pipe. A read
// costs a wake-up and a system call whatever it brings, so after a read
// that left the pipe empty the reader waits before the next, long enough
// for about gatherBytes to come at the pace the child wrote since the
// previous read, but short enough that the pipe cannot fill meanwhile:
// the wait is at most the time the pipe takes to fill at rateMargin times
// that pace, or at burstRate if that is longer (5 ms for 1 MiB: a child
// that starts writing from idle, at any pace up to burstRate, never waits
// on its pipe); it at most doubles from one read to the next, so that a
// long wait needs a pace seen over several reads; and it is never longer
// than max (maxReadDelay, or Options.ReadDelay).
//
// A reader that finds the pipe empty waits for its next event instead,
// and its pace starts anew: the next wait is at most the burstRate one. One
// that gets a line after a silence longer than quiet reads it and waits
// for the next event too. So a child that starts writing never waits on
// its pipe unless it writes faster than burstRate; one that has written
// at a steady pace for a while, unless it then writes rateMargin times
// faster (and faster than the pipe's capacity per max): a child writing
// 100 KB/s (1,000 lines of 100 bytes) is read every 100 ms, and would need
// to write 10 MB/s to fill its 1 MiB pipe in that time. The zero readPace
// never waits.
type readPace struct {
	capacity int           // the pipe's; 0: not known, never wait
	burst    time.Duration // the time to fill it at burstRate
	max      time.Duration
}

// pace returns the readPace of a pipe of that capacity.
func (h *Hub) pace(capacity int) readPace {
	max := h.readDelay
	if max == 0 {
		max = maxReadDelay
	}
	if capacity <= 0 || max < 0 {
		return readPace{}
	}
	return readPace{capacity: capacity, max: max,
		burst: min(time.Duration(capacity)*time.Second/burstRate, max)}
}

// next returns the wait before the next read, after a read that brought
// got bytes (> 0) that came in elapsed, when the wait before it was prev.
func (p readPace) next(got int, elapsed, prev time.Duration) time.Duration {
	if p.capacity == 0 || got >= gatherBytes || elapsed <= 0 {
		return 0
	}
	gather := time.Duration(float64(elapsed) * gatherBytes / float64(got))
	safe := time.Duration(float64(elapsed) * float64(p.capacity) / (rateMargin * float64(got)))
	d := min(gather, max(safe, p.burst), p.max, max(2*prev, p.burst))
	if d < minReadDelay {
		return 0
	}
	return d
}

// gridWake returns when to read a pipe whose next read may come d after
// now: the last moment at or before now+d on a grid, counted from epoch,
// of the widest spacing maxReadDelay/2^k that is not wider than d. Pipes
// read at like paces so come due at the same moments and share a
// wake-up: a hundred children writing at a steady pace, each read every
// 100 ms, cost ten wake-ups a second, not a hundred times as many as
// their reads drift apart. A wait so short that no spacing fits is kept.
func gridWake(epoch, now time.Time, d time.Duration) time.Time {
	g := maxReadDelay
	for g > d && g > minReadDelay {
		g /= 2
	}
	if g > d {
		return now.Add(d)
	}
	t := now.Add(d).Sub(epoch)
	return epoch.Add(t - t%g)
}

// quiet is the silence after which a line has no pace: the reader reads
// it and waits for the next.
func (p readPace) quiet() time.Duration { return p.max }

// CaptureStats count what a capture read and what its destinations lost.
type CaptureStats struct {
	// Lines is how many lines were read (a long line split in pieces counts
	// each piece).
	Lines uint64
	// Bytes is how many bytes were read.
	Bytes uint64
	// Split is how many times a line longer than the longest kept whole
	// was cut (a line of 2.5 times that length is cut twice).
	Split uint64
	// DroppedConsole, DroppedFile and DroppedJournal are the lines that
	// destination lost: it fell behind (its queue was full), it failed, or
	// it was closed.
	DroppedConsole, DroppedFile, DroppedJournal uint64
}

// Dropped is the lines lost by any destination (a line lost by two counts
// twice).
func (s CaptureStats) Dropped() uint64 {
	return s.DroppedConsole + s.DroppedFile + s.DroppedJournal
}

// The destinations, for counting drops.
type destination int

const (
	toConsole destination = iota
	toFile
	toJournal
	destinations
)

// Capture reads one child process's stdout and stderr until their end, and
// keeps its lines: its rings hold the last of them for queries, and its
// sinks send them on. Make one with [Hub.Capture]. Its methods are safe for
// concurrent use.
type Capture struct {
	hub           *Hub
	id            Identity
	prefix        []byte    // "web.1 | "
	json          bool      // the console's format
	jsonMiddle    [2][]byte // per stream, see jsonMiddle
	rings         [2]ring
	sinks         [destinations]sink // the console and the journal; nil when off
	fileSinks     [2]*fileSink       // per stream; nil when off
	journalFields [2][]byte          // per stream, see journalFields
	files         [2]*os.File        // read by goroutines, unless polled
	fds           [2]int             // given as descriptors (-1: none), until the poller or files take them
	polled        bool               // read by the hub's poller
	running       atomic.Int32       // readers not yet done
	done          chan struct{}

	lines, bytes, split atomic.Uint64
	dropped             [destinations]atomic.Uint64
}

// Identity returns the process the capture reads.
func (c *Capture) Identity() Identity { return c.id }

// Stats returns the counts so far.
func (c *Capture) Stats() CaptureStats {
	return CaptureStats{
		Lines:          c.lines.Load(),
		Bytes:          c.bytes.Load(),
		Split:          c.split.Load(),
		DroppedConsole: c.dropped[toConsole].Load(),
		DroppedFile:    c.dropped[toFile].Load(),
		DroppedJournal: c.dropped[toJournal].Load(),
	}
}

// Done is closed when the capture has ended: both streams reached their
// end (every process holding the pipes' write ends has closed them), or
// [Capture.Close] was called.
func (c *Capture) Done() <-chan struct{} { return c.done }

// Close ends the capture now: it closes the pipes' read ends, which ends
// the reads in progress, and waits until the readers have handed on what
// they read. A grandchild still writing to the pipe then gets EPIPE.
// Close is safe to call more than once and after the capture's end.
func (c *Capture) Close() {
	if c.polled {
		c.hub.poll.close(c)
	}
	for _, f := range c.files {
		if f != nil {
			_ = f.Close()
		}
	}
	<-c.done
}

// Wait waits for the capture's end and returns nil. When ctx ends first
// (the child has exited, but a grandchild may hold its pipes open), it
// closes the capture, keeping what was read, and returns ctx's error.
func (c *Capture) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.Close()
		return context.Cause(ctx)
	}
}

// start begins reading the files that are not nil: by the hub's poller,
// or else by a goroutine each.
func (c *Capture) start() {
	c.running.Store(1) // held until every reader has started
	if (c.files != [2]*os.File{} || c.fds != [2]int{-1, -1}) && !c.hub.noPoll && c.hub.poll.add(c) == nil {
		c.readerDone()
		return
	}
	for i, fd := range c.fds {
		if fd >= 0 {
			c.files[i] = os.NewFile(uintptr(fd), c.id.Name()+"."+Stream(i+1).String())
			c.fds[i] = -1
		}
	}
	for i, f := range c.files {
		if f == nil {
			continue
		}
		c.running.Add(1)
		go c.read(f, Stream(i+1))
	}
	c.readerDone()
}

func (c *Capture) readerDone() {
	if c.running.Add(-1) == 0 {
		close(c.done)
	}
}

// read is one stream's reader: it reads what the child wrote, frames it in
// lines, and hands each read's lines on as one batch. It never waits on
// anything but the pipe: the ring takes a batch under a short lock, and
// every sink queues it or drops it. Between reads it waits as readPace
// says; a read that waited for the pipe to have something is fresh.
func (c *Capture) read(f *os.File, stream Stream) {
	defer c.readerDone()
	defer f.Close()
	var pace readPace // never waits until the pipe is written to
	tried, grown := false, 0
	defer func() { c.hub.pipes.give(grown) }()
	max := c.hub.maxLine
	size := minReadSize // grows while reads fill it
	buf := make([]byte, max+size)
	have := 0              // the start of a line, carried over from the previous read
	last := time.Now()     // when the previous read returned
	lastData := last       // when the previous read that brought something returned
	var wait time.Duration // the wait after it
	for {
		n, err := f.Read(buf[have : have+size])
		full := n == size
		if full && size < readSize {
			size *= 4
			buf = append(buf[:have+n], make([]byte, max+size-have-n)...)
		}
		if n > 0 {
			if !tried {
				tried = true
				pace, grown = c.hub.growPipe(f) // see pipeSize
			}
			c.bytes.Add(uint64(n))
			have = c.frame(buf, have+n, stream, false)
		}
		if err != nil {
			if have > 0 {
				c.frame(buf, have, stream, true)
			}
			return
		}
		now := time.Now()
		since := now.Sub(last)
		// A read that came well after the wait waited for the pipe to
		// have something: the pace is that since the previous read that
		// brought something.
		fresh := since > wait+time.Millisecond
		if fresh {
			since = now.Sub(lastData)
			wait = 0 // the pace starts anew: the next wait is at most burst
		}
		switch {
		case full || n == 0:
			wait = 0
		case fresh && since >= pace.quiet():
			wait = 0 // a line after a silence: read the next when it comes
		default:
			wait = pace.next(n, since, wait)
		}
		last = now
		if n > 0 {
			lastData = now
		}
		if wait > 0 {
			time.Sleep(wait)
		}
	}
}

// frame hands on the whole lines of buf[:n] as one batch, moves the rest
// (the start of a line) to the front of buf, and returns its length. A
// line longer than the hub's MaxLine is split; at eof the rest is a line.
// The batch has its own copy of the lines.
func (c *Capture) frame(buf []byte, n int, stream Stream, eof bool) int {
	took := c.frameLines(buf[:n], stream, eof, true)
	return copy(buf, buf[took:n])
}

// frameLines hands on the whole lines at the start of data as one batch,
// and returns how many bytes of data they took: the rest is the start of
// a line, unless eof, when it is a line too. A line longer than the hub's
// MaxLine is split. Unless clone, the batch shares data's memory (the
// usual case: whole lines, none too long), which must never change after.
func (c *Capture) frameLines(data []byte, stream Stream, eof, clone bool) int {
	max := c.hub.maxLine
	end := bytes.LastIndexByte(data, '\n') + 1
	lines, long := frameCount(data[:end], max)
	var out []byte
	switch {
	case long:
		out, lines = c.splitLong(data[:end])
	case clone:
		out = make([]byte, end)
		copy(out, data[:end])
	default:
		out = data[:end:end] // an append copies
	}
	rest := data[end:]
	// A line longer than max is cut; at eof the rest is the last line.
	for len(rest) > max || eof && len(rest) > 0 {
		piece := rest[:min(max, len(rest))]
		out = append(append(out, piece...), '\n')
		lines++
		if len(rest) > max {
			c.split.Add(1)
		}
		rest = rest[len(piece):]
	}
	if lines > 0 {
		c.deliver(&batch{time: c.hub.now(), stream: stream, cap: c, data: out, lines: lines})
	}
	return len(data) - len(rest)
}

// frameCount returns the number of lines of data, whole lines, or says
// that one is longer than maxLine. Each block of maxLine/2 bytes that holds a
// newline is counted at once: when every block holds one, no line can be
// longer than maxLine.
func frameCount(data []byte, maxLine int) (lines int, long bool) {
	block := max(maxLine/2, 1)
	for start := 0; start < len(data); start += block {
		n := bytes.Count(data[start:min(start+block, len(data))], newline)
		if n == 0 {
			// Maybe a long line: count one line at a time.
			lines = 0
			for rest := data; len(rest) > 0; {
				i := bytes.IndexByte(rest, '\n')
				if i > maxLine {
					return 0, true
				}
				lines++
				rest = rest[i+1:]
			}
			return lines, false
		}
		lines += n
	}
	return lines, false
}

var newline = []byte{'\n'}

// splitLong copies whole lines, cutting those longer than MaxLine in pieces.
func (c *Capture) splitLong(data []byte) ([]byte, int) {
	max := c.hub.maxLine
	out := make([]byte, 0, len(data)+len(data)/max+1)
	lines := 0
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i > max {
			out = append(append(out, data[:max]...), '\n')
			c.split.Add(1)
			data = data[max:]
		} else {
			out = append(out, data[:i+1]...)
			data = data[i+1:]
		}
		lines++
	}
	return out, lines
}

// deliver keeps b in the ring, shows it to the followers and queues it for
// the sinks.
func (c *Capture) deliver(b *batch) {
	c.lines.Add(uint64(b.lines))
	c.rings[b.stream-1].append(b, &c.hub.seq)
	c.hub.publish(b)
	for d, s := range c.sinks {
		if s != nil && !s.deliver(b) {
			c.dropped[d].Add(uint64(b.lines))
		}
	}
	if f := c.fileSinks[b.stream-1]; f != nil && !f.deliver(b) {
		c.dropped[toFile].Add(uint64(b.lines))
	}
}
