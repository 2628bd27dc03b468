package logs

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// Stream is which of a child's output streams a line came from.
type Stream uint8

// The streams. The zero Stream means both, in a [Query].
const (
	Stdout Stream = 1
	Stderr Stream = 2
)

// String returns "stdout", "stderr", or "" for the zero Stream.
func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	case 0:
		return ""
	}
	return "stream(" + strconv.Itoa(int(s)) + ")"
}

// ParseStream reads "stdout" or "stderr"; "" is the zero Stream (both).
func ParseStream(s string) (Stream, error) {
	switch s {
	case "stdout":
		return Stdout, nil
	case "stderr":
		return Stderr, nil
	case "":
		return 0, nil
	}
	return 0, fmt.Errorf("stream %q: want stdout or stderr", s)
}

// Identity names the process a line came from: an instance of a service,
// and the process that instance runs now.
type Identity struct {
	// Service is the service's name.
	Service string
	// Instance is the instance's number within its service, from 0.
	Instance int
	// PID is the process's id.
	PID int
}

// Name returns "SERVICE.INSTANCE".
func (id Identity) Name() string { return id.Service + "." + strconv.Itoa(id.Instance) }

// Line is one line a child wrote, as kept in memory and queried.
type Line struct {
	// Time is when vigil read it: every line of one read shares it.
	Time time.Time
	// Identity is the process that wrote it.
	Identity
	// Stream is stdout or stderr.
	Stream Stream
	// Text is the line without its newline. It is shared: never modify it.
	Text []byte
	// Seq numbers the reads of a hub in the order they were kept, across
	// every process: the lines of one read share it. A follow resumes
	// after one (Query.After).
	Seq uint64
}

// batch is the lines of one read: whole lines, each ending with a newline.
// It is immutable once made, so the ring, the sinks and the followers
// share it without copies.
type batch struct {
	time   time.Time
	stream Stream
	cap    *Capture
	data   []byte
	lines  int
	seq    uint64 // set when the ring takes it (under the ring's lock)
}

// each calls f with each line of data (without its newline).
func eachLine(data []byte, f func(line []byte) bool) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			f(data)
			return
		}
		if !f(data[:i]) {
			return
		}
		data = data[i+1:]
	}
}

// appendLines appends the lines of b, from the skip-th on, as Lines.
func (b *batch) appendLines(out []Line, skip int) []Line {
	eachLine(b.data, func(line []byte) bool {
		if skip > 0 {
			skip--
			return true
		}
		out = append(out, Line{Time: b.time, Identity: b.cap.id, Stream: b.stream, Text: line, Seq: b.seq})
		return true
	})
	return out
}
