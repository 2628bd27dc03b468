package rpc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
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
// appended to *top, so that a line is validated and indexed at once; and
// when arrays is not nil too, the long arrays among the object's values
// are indexed as well (see [arrayIndex]).
func validate(b []byte, top *[]field, arrays *[]arrayIndex) bool {
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
		var vend int
		if arrays != nil && vstart < len(b) && b[vstart] == '[' {
			vend, ok = skipArray(b, vstart, len(*top), arrays)
		} else {
			vend, ok = skipValid(b, vstart, 1)
		}
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

// arrayIndex is where the elements of a long array, the value of a
// message's top-level field, end: found as the line is validated, so that
// [Message.GetArray] need not scan the array again.
type arrayIndex struct {
	field int      // the field's place in Message.fields
	ends  []uint32 // each element's end, an offset from the array's '['
}

// indexAbove is the count of elements over which an array is indexed, and
// indexSpacing the fewest bytes an element must take on average: a short
// array is scanned quickly enough when asked for, and the index of a long
// one takes at most a quarter of its bytes.
const (
	indexAbove   = 64
	indexSpacing = 16
)

// skipArray is skipValid for an array at b[i] that is the value of the
// top-level field numbered field: it validates the array one element at a
// time and, when the array is long (see indexAbove), appends where its
// elements end to *arrays.
func skipArray(b []byte, i, field int, arrays *[]arrayIndex) (int, bool) {
	start := i
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, true
	}
	var small [indexAbove]uint32 // the first ends, kept only if more come
	var ends []uint32
	n := 0
	for {
		end, ok := skipValid(b, i, 2)
		if !ok {
			return 0, false
		}
		switch {
		case n < len(small):
			small[n] = uint32(end - start)
		case n == len(small):
			// Room for as many elements as the rest of b holds, if they
			// are as long as the first ones, within a bound.
			rest := len(b) - start
			room := min(n*(rest/(end-start)+1), rest/(4*indexSpacing))
			ends = make([]uint32, n, max(4*n, room))
			copy(ends, small[:])
			fallthrough
		default:
			ends = append(ends, uint32(end-start))
		}
		n++
		i = skipSpace(b, end)
		if i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			i++
			if ends != nil && i-start >= indexSpacing*n && uint64(i-start) <= maxIndexed {
				*arrays = append(*arrays, arrayIndex{field: field, ends: ends})
			}
			return i, true
		default:
			return 0, false
		}
	}
}

// maxIndexed is the longest array indexed: its offsets fit in a uint32.
const maxIndexed = 1<<32 - 1

// skipValid returns the index after the valid JSON value that starts at
// b[i], and false when there is none; depth is how deep the value is
// nested already. An object's keys are read in the loop, not in calls: a
// status reply has some ten of them in each of its thousands of entries.
func skipValid(b []byte, i, depth int) (int, bool) {
	var small [64]byte
	closers := small[:0] // what closes each open container: '}' or ']'
	ok := true
	key := false // a member's key and colon come before the value
	for {
		if key {
			key = false
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			if i = plainEnd(b, i+1); i < len(b) && b[i] == '"' {
				i++
			} else if i, ok = skipEscaped(b, i); !ok {
				return 0, false
			}
			if i < len(b) && b[i] == ':' {
				i++
			} else if i = skipSpace(b, i); i < len(b) && b[i] == ':' {
				i++
			} else {
				return 0, false
			}
			i = skipSpace(b, i)
		}
		// A value starts at b[i].
		if i >= len(b) {
			return 0, false
		}
		switch c := b[i]; c {
		case '"':
			if i = plainEnd(b, i+1); i < len(b) && b[i] == '"' {
				i++
			} else {
				i, ok = skipEscaped(b, i)
			}
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
			key = c == '{'
			continue // its first value
		case 't':
			ok = len(b)-i >= 4 && string(b[i:i+4]) == "true"
			i += 4
		case 'f':
			ok = len(b)-i >= 5 && string(b[i:i+5]) == "false"
			i += 5
		case 'n':
			ok = len(b)-i >= 4 && string(b[i:i+4]) == "null"
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
				key = closer == '}'
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
	if i = plainEnd(b, i+1); i < len(b) && b[i] == '"' {
		return i + 1, true
	}
	return skipEscaped(b, i)
}

// plainEnd returns the index of the first byte from b[i] on that a string
// may not hold as it is (a control character, a quote or a backslash), or
// len(b): eight bytes at a time, and one at a time in the last seven of b.
func plainEnd(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := specials(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

// skipEscaped goes on with a string at b[i], its first byte that is not
// plain (or len(b)): it returns the index after the string's closing quote,
// and false when the string is not valid: a control character, a bad
// escape, or no closing quote.
func skipEscaped(b []byte, i int) (int, bool) {
	for {
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
			i = plainEnd(b, i+1)
		default: // a control character
			return 0, false
		}
	}
}

// specials marks, with its high bit, each byte of w (eight bytes of a
// string, little-endian) that is a control character, a quote or a
// backslash, as far as the first one: the lowest byte marked is the first
// special byte, and none below it is marked (a byte above it may be marked
// wrongly, by a borrow).
func specials(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	less := (w - ones*0x20) &^ w // a byte under 0x20
	q := w ^ ones*'"'
	quote := (q - ones) &^ q // a byte equal to '"'
	s := w ^ ones*'\\'
	slash := (s - ones) &^ s
	return (less | quote | slash) & highs
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
