package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrClosed is wrapped by the error of every call that was pending when its
// connection ended, and of every call made on a closed connection.
var ErrClosed = errors.New("rpc: connection closed")

// ErrLineTimeout is returned by [Conn.Run] when a line is not completed
// within [Options.LineTimeout] of its first byte.
var ErrLineTimeout = errors.New("rpc: line not completed in time")

// ErrLineTooLong is returned by [Conn.Run] when a line exceeds
// [Options.MaxLineSize]; the connection is closed since its framing is lost.
var ErrLineTooLong = errors.New("rpc: line too long")

// Error is an error that travels over the wire in the object form
// {"class": "...", "message": "..."}. A [Handler] returns one to choose the
// class; any other error gets the class "RuntimeError".
type Error struct {
	Class   string `json:"class"`   // e.g. "ArgumentError"; "": none
	Message string `json:"message"` // what went wrong, for people
}

// Error implements error.
func (e *Error) Error() string {
	if e.Class == "" {
		return e.Message
	}
	return e.Class + ": " + e.Message
}

// Errorf returns an [Error] of the given class.
func Errorf(class, format string, args ...any) *Error {
	return &Error{Class: class, Message: fmt.Sprintf(format, args...)}
}

// ArgumentError returns an [Error] of class "ArgumentError", the class the
// original uses for bad parameters.
func ArgumentError(format string, args ...any) *Error {
	return Errorf("ArgumentError", format, args...)
}

// wireError converts any error to its wire form.
func wireError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Class: "RuntimeError", Message: err.Error()}
}

// RemoteError is returned by [Conn.Call] when the final reply is a failure.
// The peer's "error" field may be the object form (Class and Message set) or
// the string form the original uses for some errors (only Message set).
type RemoteError struct {
	Class   string // the peer's "class"; "": none (string form)
	Message string // the peer's "message", or the error string
	// Reply is the failed final reply itself, with any other fields the peer
	// sent (for example "connection_id").
	Reply *Message
}

// Error implements error.
func (e *RemoteError) Error() string {
	if e.Class == "" {
		return e.Message
	}
	return e.Class + ": " + e.Message
}

// remoteError builds the RemoteError of a failed final reply.
func remoteError(m *Message) *RemoteError {
	e := &RemoteError{Reply: m}
	raw, ok := m.Get("error")
	switch {
	case !ok || string(raw) == "null":
		e.Message = "failed without an error"
	case raw[0] == '"':
		e.Message, _ = m.GetString("error")
	case raw[0] == '{':
		var w Error
		if err := json.Unmarshal(raw, &w); err != nil {
			e.Message = string(raw)
		} else {
			e.Class, e.Message = w.Class, w.Message
		}
	default:
		e.Message = string(raw)
	}
	return e
}
