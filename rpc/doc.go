// Package rpc is the JSON-lines call protocol of vigil's supervisor socket
// (PROTOCOL.md): one JSON object per line, both ends calling at once, each
// call answered by zero or more intermediate replies and one final reply
// that carries "finished": true.
//
// A [Conn] wraps any io.ReadWriteCloser. Its [Conn.Run] method is the one
// reader of the connection: it routes replies to the pending [Conn.Call]s
// that wait for them and dispatches incoming calls to [Handler]s by
// operation name, each in its own goroutine. When the connection ends,
// every pending call returns an error that wraps [ErrClosed], every running
// handler's context is cancelled, and Run returns only after the last
// handler has returned, so no goroutine outlives the connection.
//
// Ids keep the two directions apart: the side that accepted the connection
// numbers its calls 3, 5, 7, …; the side that connected numbers them 2, 4,
// 6, … (see [Options.Accepted]).
//
// Bad input never takes the connection down: a line that is not a JSON
// object, or that has no usable id, is logged (by its length and kind, not
// its content) and skipped. Only a line longer than [Options.MaxLineSize]
// closes the connection, since the framing is lost, and one that does not
// end within [Options.LineTimeout] of its first byte.
//
// A connection holds little for its peer: at most [Options.MaxInFlight]
// handlers run at once, and while they do the reader stops reading, so a
// peer that calls faster than it reads its replies is pushed back by the
// kernel's socket buffers. When the peer's input ends with a half-close
// (it shut down its sending side only), the calls already read are
// answered before the connection closes.
//
// A connection costs what it uses. Lines are validated and indexed in one
// pass (the long arrays among a message's fields too, so that
// [Message.GetArray] need not scan them again); a short line is copied out
// of a small pooled buffer, a longer one takes the buffer it grew in, and
// one over 64 KiB is read into pooled chunks and joined, once, into a
// slice of its exact size. Between lines a socket is waited on with no
// buffer. With a [Parker] (Linux), a connection idle for
// [Options.ParkAfter] has no goroutine either: its socket waits in the
// Parker's epoll set, and [Conn.Start] serves a connection this way
// without a goroutine of the caller's. A goroutine that served a call
// serves the connection's next one if it comes within 100 ms, its stack
// already grown.
package rpc
