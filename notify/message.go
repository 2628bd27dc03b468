// Package notify implements the readiness protocol between a supervised
// process and whatever started it, in both directions.
//
// The child side is a [Client], chosen by [New] from the environment in the
// original's order: a parent's pipe (NOTIFY_PIPE, JSON lines), systemd's
// notification socket (NOTIFY_SOCKET, KEY=VALUE datagrams), a file of JSON
// lines (NOTIFY_LOG, for Kubernetes probes), or else the log.
//
// The parent side is [Pipe], which makes the pipe handed to a child, and
// [Reader], which yields the child's parsed messages and skips garbage;
// [Parser] does the same for bytes fed to it as they are read (from a
// non-blocking pipe, say).
//
// [Watchdog] keeps systemd's watchdog fed while a health function says so.
package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// Message is one readiness message. On the wire (pipe and log file) it is a
// single-line JSON object, as in the original:
//
//	{"ready":true}
//	{"status":"Preparing..."}
//	{"healthy":true}
//	{"reloading":true,"ready":false}
//	{"restarting":true}
//	{"stopping":true}
//	{"status":"...","errno":-1}
//
// The zero Message is empty: every field is omitted when zero. Ready is a
// pointer so that "ready":false can be said (while reloading) and told apart
// from "not mentioned".
type Message struct {
	// Ready is true when the process is ready, false when it says it is no
	// longer ready (while reloading), nil when the message does not say.
	Ready *bool `json:"ready,omitempty"`
	// Healthy is a heartbeat: the process is alive and well.
	Healthy bool `json:"healthy,omitempty"`
	// Reloading says the process is reloading its configuration.
	Reloading bool `json:"reloading,omitempty"`
	// Restarting says the process is restarting.
	Restarting bool `json:"restarting,omitempty"`
	// Stopping says the process is shutting down.
	Stopping bool `json:"stopping,omitempty"`
	// Watchdog is a systemd watchdog keep-alive (WATCHDOG=1). Only the
	// systemd client sends it; the other clients ignore a message whose only
	// content is Watchdog.
	Watchdog bool `json:"watchdog,omitempty"`
	// Status is a free-form human-readable status line.
	Status string `json:"status,omitempty"`
	// Errno is an error number, non-zero for errors (the original sends -1).
	Errno int `json:"errno,omitempty"`
	// Extra holds fields other than the ones above, passed through as they
	// are: unknown fields read by UnmarshalJSON land here, and MarshalJSON
	// writes them after the known fields, sorted by key. Keys that name a
	// known field are ignored when marshalling.
	Extra map[string]json.RawMessage `json:"-"`
}

// Bool returns a pointer to b, for Message.Ready.
func Bool(b bool) *bool { return &b }

// IsReady reports whether the message says the process is ready.
func (m Message) IsReady() bool { return m.Ready != nil && *m.Ready }

// IsZero reports whether the message says nothing at all.
func (m Message) IsZero() bool {
	return m.Ready == nil && !m.Healthy && !m.Reloading && !m.Restarting &&
		!m.Stopping && !m.Watchdog && m.Status == "" && m.Errno == 0 && len(m.Extra) == 0
}

// onlyWatchdog reports whether the message is a bare watchdog keep-alive.
func (m Message) onlyWatchdog() bool {
	if !m.Watchdog {
		return false
	}
	m.Watchdog = false
	return m.IsZero()
}

var knownKeys = map[string]bool{
	"ready": true, "healthy": true, "reloading": true, "restarting": true,
	"stopping": true, "watchdog": true, "status": true, "errno": true,
}

// ErrNotObject is returned by UnmarshalJSON for JSON that is not an object.
var ErrNotObject = errors.New("notify: message is not a JSON object")

// MarshalJSON encodes the message as one compact JSON object: the known
// fields in a fixed order (ready, healthy, reloading, restarting, stopping,
// watchdog, status, errno), zero ones omitted, then Extra sorted by key. An
// Extra value that is not valid JSON is an error.
func (m Message) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	field := func(key string, value any) error {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		k, _ := json.Marshal(key)
		buf.Write(k)
		buf.WriteByte(':')
		switch v := value.(type) {
		case json.RawMessage:
			if err := json.Compact(&buf, v); err != nil {
				return fmt.Errorf("notify: extra field %q: %w", key, err)
			}
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("notify: field %q: %w", key, err)
			}
			buf.Write(b)
		}
		return nil
	}
	if m.Ready != nil {
		_ = field("ready", *m.Ready)
	}
	for _, f := range []struct {
		key string
		on  bool
	}{{"healthy", m.Healthy}, {"reloading", m.Reloading}, {"restarting", m.Restarting}, {"stopping", m.Stopping}, {"watchdog", m.Watchdog}} {
		if f.on {
			_ = field(f.key, true)
		}
	}
	if m.Status != "" {
		_ = field("status", m.Status)
	}
	if m.Errno != 0 {
		_ = field("errno", m.Errno)
	}
	for _, k := range sortedKeys(m.Extra) {
		if knownKeys[k] {
			continue
		}
		if err := field(k, m.Extra[k]); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON decodes one JSON object. Known fields must have their types
// (booleans, a string, an integer; "ready" may also be null); anything else
// is an error. Unknown fields are kept in Extra. JSON that is not an object
// (an array, a string, null) yields an error wrapping ErrNotObject.
func (m *Message) UnmarshalJSON(data []byte) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ErrNotObject
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	var out Message
	for k, raw := range fields {
		var err error
		switch k {
		case "ready":
			err = json.Unmarshal(raw, &out.Ready)
		case "healthy":
			err = json.Unmarshal(raw, &out.Healthy)
		case "reloading":
			err = json.Unmarshal(raw, &out.Reloading)
		case "restarting":
			err = json.Unmarshal(raw, &out.Restarting)
		case "stopping":
			err = json.Unmarshal(raw, &out.Stopping)
		case "watchdog":
			err = json.Unmarshal(raw, &out.Watchdog)
		case "status":
			err = json.Unmarshal(raw, &out.Status)
		case "errno":
			err = json.Unmarshal(raw, &out.Errno)
		default:
			if out.Extra == nil {
				out.Extra = make(map[string]json.RawMessage)
			}
			out.Extra[k] = append(json.RawMessage(nil), raw...)
		}
		if err != nil {
			return fmt.Errorf("notify: field %q: %w", k, err)
		}
	}
	*m = out
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Ready sends {"ready":true}, with a status if status is not empty.
func Ready(c Client, status string) error {
	return c.Send(Message{Ready: Bool(true), Status: status})
}

// Status sends {"status":status}.
func Status(c Client, status string) error {
	return c.Send(Message{Status: status})
}

// Healthy sends the heartbeat {"healthy":true}.
func Healthy(c Client) error {
	return c.Send(Message{Healthy: true})
}

// Reloading sends {"reloading":true,"ready":false}, with a status if not
// empty. systemd receives RELOADING=1 with MONOTONIC_USEC.
func Reloading(c Client, status string) error {
	return c.Send(Message{Reloading: true, Ready: Bool(false), Status: status})
}

// Restarting sends {"restarting":true,"ready":false}, with a status if not
// empty. systemd has no restart notification: it receives RELOADING=1.
func Restarting(c Client, status string) error {
	return c.Send(Message{Restarting: true, Ready: Bool(false), Status: status})
}

// Stopping sends {"stopping":true}, with a status if not empty.
func Stopping(c Client, status string) error {
	return c.Send(Message{Stopping: true, Status: status})
}

// Error sends {"status":status,"errno":errno}; an errno of 0 becomes -1, as
// in the original.
func Error(c Client, status string, errno int) error {
	if errno == 0 {
		errno = -1
	}
	return c.Send(Message{Status: status, Errno: errno})
}
