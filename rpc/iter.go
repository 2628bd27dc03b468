package rpc

import (
	"bytes"
	"encoding/json"
	"iter"
)

// Fields yields the fields of a JSON object that came from a Message (it
// is not validated again): each key unquoted (sharing raw's bytes, unless
// it has escapes to decode) and each value raw, in the order they came. It
// yields nothing when raw is not an object. Unlike [Object], it allocates
// nothing: walking thousands of objects stays cheap.
func Fields(raw []byte) iter.Seq2[[]byte, json.RawMessage] {
	return func(yield func([]byte, json.RawMessage) bool) {
		i := skipSpace(raw, 0)
		if i >= len(raw) || raw[i] != '{' {
			return
		}
		i = skipSpace(raw, i+1)
		for i < len(raw) && raw[i] == '"' {
			kstart := i
			i = skipString(raw, i)
			quoted := raw[kstart:i]
			key := quoted[1 : len(quoted)-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				key = newField(quoted, nil).key
			}
			i = skipSpace(raw, i)
			i = skipSpace(raw, i+1) // the colon
			vstart := i
			i = skipValue(raw, i)
			if !yield(key, raw[vstart:i]) {
				return
			}
			i = skipSpace(raw, i)
			if i < len(raw) && raw[i] == ',' {
				i = skipSpace(raw, i+1)
			}
		}
	}
}

// Values yields the elements of a JSON array that came from a Message (it
// is not validated again), raw; nothing when raw is not an array. Unlike
// [Elements], it allocates nothing.
func Values(raw []byte) iter.Seq[json.RawMessage] {
	return func(yield func(json.RawMessage) bool) {
		i := skipSpace(raw, 0)
		if i >= len(raw) || raw[i] != '[' {
			return
		}
		i = skipSpace(raw, i+1)
		for i < len(raw) && raw[i] != ']' {
			start := i
			i = skipValue(raw, i)
			if !yield(raw[start:i]) {
				return
			}
			i = skipSpace(raw, i)
			if i < len(raw) && raw[i] == ',' {
				i = skipSpace(raw, i+1)
			}
		}
	}
}
