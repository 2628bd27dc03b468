package rpc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"unicode/utf8"
)

// maxDepth is the deepest nesting of objects and arrays a line may have,
// as with encoding/json (whose Valid refuses deeper values).
const maxDepth = 10000

// plain marks the bytes a string may hold as they are: not a control
// character, not a quote, not a backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// validate reports whether b is exactly one JSON value (white space
// around it allowed): it accepts what encoding/json's Valid accepts and
// nothing else, in one pass, without allocating for values nested at most
// 64 deep. When b is an object and top is not nil, the object's fields are
// appended to *top, so that a line is validated and indexed at once.
func validate(b []byte, top *[]field) bool {
	i := skipSpace(b, 0)
	if top == nil || i >= len(b) || b[i] != '{' {
		end, ok := skipValid(b, i, 0)
		return ok && skipSpace(b, end) == len(b)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		kstart, kend, vstart, ok := member(b, i)
		if !ok {
			return false
		}
		vend, ok := skipValid(b, vstart, 1)
		if !ok {
			return false
		}
		*top = append(*top, newField(b[kstart:kend], b[vstart:vend]))
		i = skipSpace(b, vend)
		switch {
		case i >= len(b):
			return false
		case b[i] == ',':
			i = skipSpace(b, i+1)
		case b[i] == '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// skipValid returns the index after the valid JSON value that starts at
// b[i], and false when there is none; depth is how deep the value is
// nested already.
func skipValid(b []byte, i, depth int) (int, bool) {
	var small [64]byte
	closers := small[:0] // what closes each open container: '}' or ']'
	ok := true
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return 0, false
		}
		switch c := b[i]; c {
		case '"':
			i, ok = skipValidString(b, i)
		case '{', '[':
			if depth+len(closers) >= maxDepth {
				return 0, false
			}
			closer := c + 2 // '}' is '{'+2, ']' is '['+2
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == closer {
				i++
				break // an empty container: a value that ended
			}
			closers = append(closers, closer)
			if c == '{' {
				_, _, i, ok = member(b, i)
				if !ok {
					return 0, false
				}
			}
			continue // its first value
		case 't':
			ok = bytes.HasPrefix(b[i:], []byte("true"))
			i += 4
		case 'f':
			ok = bytes.HasPrefix(b[i:], []byte("false"))
			i += 5
		case 'n':
			ok = bytes.HasPrefix(b[i:], []byte("null"))
			i += 4
		default:
			i, ok = skipNumber(b, i)
		}
		if !ok {
			return 0, false
		}
		// A value ended at b[i]: close the containers it ends, up to the
		// next value.
		for {
			if len(closers) == 0 {
				return i, true
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			closer := closers[len(closers)-1]
			if b[i] == ',' {
				i = skipSpace(b, i+1)
				if closer == '}' {
					if _, _, i, ok = member(b, i); !ok {
						return 0, false
					}
				}
				break
			}
			if b[i] != closer {
				return 0, false
			}
			closers = closers[:len(closers)-1]
			i++
		}
	}
}

// member reads an object member's key and colon at b[i]: it returns the
// key's bounds (quotes included) and the index of the member's value.
func member(b []byte, i int) (kstart, kend, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, 0, false
	}
	kstart = i
	if kend, ok = skipValidString(b, i); !ok {
		return 0, 0, 0, false
	}
	i = skipSpace(b, kend)
	if i >= len(b) || b[i] != ':' {
		return 0, 0, 0, false
	}
	return kstart, kend, skipSpace(b, i+1), true
}

// newField is a field of the quoted key and the raw value: the key is a
// slice of quoted unless it needs decoding.
func newField(quoted, value []byte) field {
	key := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) {
		var k string
		_ = json.Unmarshal(quoted, &k) // valid JSON: cannot fail
		key = []byte(k)
	}
	return field{quoted: quoted, key: key, value: value}
}

// skipValidString returns the index after the string starting at b[i] ==
// '"', and false when it is not a valid JSON string: a control character,
// a bad escape, or no closing quote.
func skipValidString(b []byte, i int) (int, bool) {
	i++
	for {
		// Eight bytes at a time while none needs a look, then one at a
		// time up to the one that does.
		for i+8 <= len(b) && !special(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case '"':
			return i + 1, true
		case '\\':
			i++
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return 0, false
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return 0, false
					}
				}
				i += 4
			default:
				return 0, false
			}
			i++
		default: // a control character
			return 0, false
		}
	}
}

// special reports whether one of the eight bytes of w may be a control
// character, a quote or a backslash (it may say so of a byte that is not,
// never the other way round).
func special(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	less := (w - ones*0x20) &^ w   // a byte under 0x20
	quote := (w ^ ones*'"') - ones // a byte equal to '"'
	quote &^= w ^ ones*'"'
	slash := (w ^ ones*'\\') - ones
	slash &^= w ^ ones*'\\'
	return (less|quote|slash)&highs != 0
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// skipNumber returns the index after the number starting at b[i], and
// false when it is not a valid JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return 0, false
	case b[i] == '0':
		i++
	case isDigit(b[i]):
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	return i, true
}
