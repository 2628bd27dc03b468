package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"unicode/utf8"
)

// ErrNotObject is wrapped by the error of [Parse] for a line that is valid
// JSON but not an object (null, a number, a string, an array).
var ErrNotObject = errors.New("not a JSON object")

// ErrSyntax is wrapped by the error of [Parse] for a line that is not valid
// JSON (including an empty line).
var ErrSyntax = errors.New("invalid JSON")

// Message is one decoded line: a JSON object whose top-level fields are kept
// raw, in the order they came. A Message is immutable once parsed and safe
// to share between goroutines.
type Message struct {
	line   []byte
	fields []field
	arrays []arrayIndex // the long arrays among the fields' values, indexed
	inline [6]field     // the fields of a small message: one allocation for all
}

type field struct {
	quoted []byte // the key as written, quotes included
	key    []byte // the key, unquoted (usually a slice of quoted: no copy)
	value  []byte // the raw JSON value
}

// jsonSpace is the white space JSON allows between tokens.
const jsonSpace = " \t\r\n"

// Parse decodes one line (without its newline; a trailing "\r" and
// surrounding white space are ignored). It keeps line: the caller must not
// modify it afterwards.
//
// Errors: an empty or invalid line wraps [ErrSyntax]; valid JSON that is not
// an object wraps [ErrNotObject].
func Parse(line []byte) (*Message, error) {
	line = bytes.Trim(line, jsonSpace)
	if len(line) == 0 {
		return nil, fmt.Errorf("empty line: %w", ErrSyntax)
	}
	if line[0] != '{' {
		if validate(line, nil, nil) {
			return nil, fmt.Errorf("%w: %.64q", ErrNotObject, line)
		}
		return nil, fmt.Errorf("%w: %.64q", ErrSyntax, line)
	}
	m := &Message{line: line}
	m.fields = m.inline[:0]
	if !validate(line, &m.fields, &m.arrays) {
		return nil, fmt.Errorf("%w: %.64q", ErrSyntax, line)
	}
	return m, nil
}

// scanObject lists the top-level fields of a valid JSON object.
func scanObject(b []byte, fields []field) []field {
	i := skipSpace(b, 1)
	for i < len(b) && b[i] != '}' {
		kstart := i
		i = skipString(b, i)
		quoted := b[kstart:i]
		key := quoted[1 : len(quoted)-1]
		if bytes.IndexByte(quoted, '\\') >= 0 || !utf8.Valid(quoted) {
			var k string
			_ = json.Unmarshal(quoted, &k) // valid JSON: cannot fail
			key = []byte(k)
		}
		i = skipSpace(b, i)
		i = skipSpace(b, i+1) // the colon
		vstart := i
		i = skipValue(b, i)
		fields = append(fields, field{quoted: quoted, key: key, value: b[vstart:i]})
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return fields
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string that starts at b[i] ==
// '"' (in valid JSON: a quote after an odd run of backslashes is escaped).
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b)
		}
		i += q
		n := 0
		for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return i + 1
		}
	}
	return i
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
			i++
		}
		return i
	}
}

// GetObject returns an object field as a Message of its own (sharing this
// one's bytes, with no second validation), and false when the field is
// absent or not an object.
func (m *Message) GetObject(key string) (*Message, bool) {
	v, ok := m.Get(key)
	if !ok || len(v) == 0 || v[0] != '{' {
		return nil, false
	}
	return objectOf(v), true
}

// GetArray returns the elements of an array field, raw, and false when the
// field is absent or not an array. The elements of a long array were found
// as the message was parsed: GetArray does not scan it again.
func (m *Message) GetArray(key string) ([]json.RawMessage, bool) {
	f := m.lookup(key)
	if f < 0 {
		return nil, false
	}
	v := m.fields[f].value
	if len(v) == 0 || v[0] != '[' {
		return nil, false
	}
	for _, a := range m.arrays {
		if a.field == f {
			return a.elements(v), true
		}
	}
	return Elements(v), true
}

// elements returns the elements of raw, the array a indexes, as
// [Elements] would.
func (a arrayIndex) elements(raw []byte) []json.RawMessage {
	elems := make([]json.RawMessage, len(a.ends))
	i := skipSpace(raw, 1)
	for k, end := range a.ends {
		elems[k] = raw[i:end]
		i = skipSpace(raw, int(end))
		i = skipSpace(raw, i+1) // the comma
	}
	return elems
}

// Elements returns the elements of a JSON array, raw; nil when raw is not
// an array. raw must come from a Message (it is not validated again).
func Elements(raw json.RawMessage) []json.RawMessage {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil
	}
	elems := []json.RawMessage{}
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] != ']' {
		start := i
		i = skipValue(raw, i)
		elems = append(elems, raw[start:i])
		i = skipSpace(raw, i)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return elems
}

// All yields the top-level fields in the order they came, keys unquoted
// and values raw.
func (m *Message) All() iter.Seq2[string, json.RawMessage] {
	return func(yield func(string, json.RawMessage) bool) {
		for _, f := range m.fields {
			if !yield(string(f.key), f.value) {
				return
			}
		}
	}
}

// Object returns an element of [Message.GetArray] that is an object as a
// Message, and false when it is not an object. raw must come from a Message
// (it is not validated again).
func Object(raw json.RawMessage) (*Message, bool) {
	raw = bytes.Trim(raw, jsonSpace)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	return objectOf(raw), true
}

// objectOf indexes an object already validated.
func objectOf(raw []byte) *Message {
	m := &Message{line: raw}
	m.fields = scanObject(raw, m.inline[:0])
	return m
}

// Bytes returns the message as it was received (trimmed of white space).
func (m *Message) Bytes() []byte { return m.line }

// String returns the message as text.
func (m *Message) String() string { return string(m.line) }

// Get returns the raw JSON value of a top-level field. When a key appears
// twice, the last one counts, as with encoding/json.
func (m *Message) Get(key string) (json.RawMessage, bool) {
	if f := m.lookup(key); f >= 0 {
		return m.fields[f].value, true
	}
	return nil, false
}

// lookup returns the place in m.fields of the field key (the last one when
// it appears twice), or -1.
func (m *Message) lookup(key string) int {
	for i := len(m.fields) - 1; i >= 0; i-- {
		if string(m.fields[i].key) == key {
			return i
		}
	}
	return -1
}

// Has reports whether the field is present and not null.
func (m *Message) Has(key string) bool {
	v, ok := m.Get(key)
	return ok && string(v) != "null"
}

// Keys returns the top-level keys in the order they came.
func (m *Message) Keys() []string {
	keys := make([]string, len(m.fields))
	for i, f := range m.fields {
		keys[i] = string(f.key)
	}
	return keys
}

// GetString returns a string field. It reports false when the field is
// absent, null or not a string.
func (m *Message) GetString(key string) (string, bool) {
	v, _ := m.Get(key)
	return String(v)
}

// String decodes a raw JSON string value; false when raw is not a string.
func String(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// Int decodes a raw JSON integer (negative ones too) that an int64 holds;
// false when raw is not one, or is out of range.
func Int(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || len(raw) > 20 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil
}

// GetBool returns a boolean field; absent, null or not a boolean is false.
func (m *Message) GetBool(key string) bool {
	v, _ := m.Get(key)
	return string(v) == "true"
}

// ID returns the raw id, or nil when the message has none (or a null one).
func (m *Message) ID() json.RawMessage {
	v, ok := m.Get("id")
	if !ok || string(v) == "null" {
		return nil
	}
	return v
}

// IntID returns the id as an integer, and false when the id is absent or is
// not a non-negative integer.
func (m *Message) IntID() (uint64, bool) {
	v := m.ID()
	if len(v) == 0 || v[0] < '0' || v[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	return n, err == nil
}

// Operation returns the name in "do", and false when the message is not a
// call. A "do" that is present but not a string gives ("", true).
func (m *Message) Operation() (string, bool) {
	v, ok := m.Get("do")
	if !ok || string(v) == "null" {
		return "", false
	}
	s, _ := m.GetString("do")
	return s, true
}

// Finished reports whether this is a final reply.
func (m *Message) Finished() bool { return m.GetBool("finished") }

// Failed reports whether this is a failed final reply.
func (m *Message) Failed() bool { return m.GetBool("failed") }

// Decode unmarshals the whole message into v (a struct with the fields of
// interest, or a map).
func (m *Message) Decode(v any) error { return json.Unmarshal(m.line, v) }

// DecodeField unmarshals one field into v. An absent or null field leaves v
// untouched and returns nil.
func (m *Message) DecodeField(key string, v any) error {
	raw, ok := m.Get(key)
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("field %q: %w", key, err)
	}
	return nil
}

// appendWithout writes the message's fields, except those named in skip, as
// ",key:value" pairs.
func (m *Message) appendFields(dst []byte, skip ...string) []byte {
next:
	for _, f := range m.fields {
		for _, s := range skip {
			if string(f.key) == s {
				continue next
			}
		}
		dst = append(dst, ',')
		dst = append(dst, f.quoted...)
		dst = append(dst, ':')
		dst = append(dst, f.value...)
	}
	return dst
}

// header writes `{"id":ID` and, as asked, the finished and failed flags.
func header(dst, id []byte, finished, failed bool) []byte {
	dst = append(dst, `{"id":`...)
	dst = append(dst, id...)
	if finished {
		dst = append(dst, `,"finished":true`...)
	}
	if failed {
		dst = append(dst, `,"failed":true`...)
	}
	return dst
}

// appendBody appends the fields of v, a value that marshals to a JSON
// object (a struct, a map, a json.RawMessage of an object, or nil), after a
// header, and closes the object with "}\n".
func appendBody(dst []byte, v any) ([]byte, error) {
	var body []byte
	switch v := v.(type) {
	case nil:
	case json.RawMessage:
		body = v
	case *Message:
		return append(v.appendFields(dst, "id", "finished", "failed"), '}', '\n'), nil
	default:
		var err error
		body, err = json.Marshal(v)
		if err != nil {
			return dst, err
		}
	}
	body = bytes.Trim(body, jsonSpace)
	if len(body) > 0 && string(body) != "null" {
		if body[0] != '{' {
			return dst, fmt.Errorf("reply fields must be a JSON object, not %.32s", body)
		}
		inner := bytes.Trim(body[1:len(body)-1], jsonSpace)
		if len(inner) > 0 {
			dst = append(dst, ',')
			dst = append(dst, inner...)
		}
	}
	return append(dst, '}', '\n'), nil
}
