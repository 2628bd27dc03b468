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
	// each read that fills it makes it 4 times larger, up to readSize.
	minReadSize = 4 << 10
	readSize    = 256 << 10
	// pipeSize is the capacity a capture asks for its pipes, so that a
	// child may write for a while between two reads: 1 MiB, the most an
	// unprivileged process gets by default (/proc/sys/fs/pipe-max-size).
	pipeSize = 1 << 20
	// gatherBytes is how much a read after a wait aims to bring.
	gatherBytes = 128 << 10
	// burstRate is the fastest a child may write, in bytes a second,
	// without ever waiting on a full pipe while the reader waits.
	burstRate = 200 << 20
	// minReadDelay and maxReadDelay bound the wait between reads: shorter
	// is not worth a timer; longer makes the lines' times and a follower
	// lag.
	minReadDelay = 50 * time.Microsecond
	maxReadDelay = 10 * time.Millisecond
)

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
	if c.files != [2]*os.File{} && !c.hub.noPoll && c.hub.poll.add(c) == nil {
		c.readerDone()
		return
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
// every sink queues it or drops it.
//
// A read costs a wake-up and a system call whatever it brings, so after a
// small read the reader waits a little before the next, long enough for
// about gatherBytes to come at the rate of the last read, and never longer
// than the pipe takes to fill at burstRate: the child never waits on a
// full pipe unless it writes faster than that.
func (c *Capture) read(f *os.File, stream Stream) {
	defer c.readerDone()
	defer f.Close()
	maxDelay := c.hub.readDelay
	if maxDelay == 0 {
		maxDelay = time.Duration(growPipe(f)) * time.Second / burstRate
	}
	maxDelay = min(maxDelay, maxReadDelay)
	max := c.hub.maxLine
	size := minReadSize // grows while reads fill it
	buf := make([]byte, max+size)
	have := 0 // the start of a line, carried over from the previous read
	last := time.Now()
	for {
		n, err := f.Read(buf[have : have+size])
		if n == size && size < readSize {
			size *= 4
			buf = append(buf[:have+n], make([]byte, max+size-have-n)...)
		}
		if n > 0 {
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
		if n < gatherBytes && maxDelay > 0 {
			d := time.Duration(float64(now.Sub(last)) * gatherBytes / float64(n))
			if d = min(d, maxDelay); d >= minReadDelay {
				time.Sleep(d)
			}
		}
		last = now
	}
}

// frame hands on the whole lines of buf[:n] as one batch, moves the rest
// (the start of a line) to the front of buf, and returns its length. A
// line longer than the hub's MaxLine is split; at eof the rest is a line.
func (c *Capture) frame(buf []byte, n int, stream Stream, eof bool) int {
	max := c.hub.maxLine
	data := buf[:n]
	// The usual case: whole lines, none too long: one copy.
	end := bytes.LastIndexByte(data, '\n') + 1
	lines, long := 0, false
	for rest := data[:end]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i > max {
			long = true
			break
		}
		lines++
		rest = rest[i+1:]
	}
	var out []byte
	if !long {
		out = make([]byte, end, end+1)
		copy(out, data[:end])
	} else {
		out, lines = c.splitLong(data[:end])
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
	return copy(buf, rest)
}

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
