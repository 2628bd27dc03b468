package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// The document is decoded in two steps, so that every problem is found,
// not only the first: go-toml parses it into plain values (a syntax error
// stops there: nothing after it can be trusted), then decodeValue fills
// fileConfig from them key by key, recording each unknown key and each
// value of the wrong type at its place, and going on with the rest. A key
// in error is left out of the result (as if absent), and the validator
// stays silent about it (see validator.fail), so one mistake is reported
// once.
//
// Fields of the file* structs may be: a pointer to any of these, a struct
// (a TABLE, its keys named by `toml` tags), map[string]T (a table of any
// keys), []T (an array), []any (an array of anything, checked later), any
// (a value of any kind, checked later), string, int64, bool, and the string
// kinds tomlDuration and tomlSize.

// decodeDocument decodes a document that parses into f. It returns the
// problems found, in no particular order; a syntax error is returned
// alone, as err.
func decodeDocument(data []byte, f *fileConfig, v *validator) error {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return err
	}
	v.pos = indexPositions(data)
	v.decodeValue(reflect.ValueOf(f).Elem(), doc, nil)
	return nil
}

// decodeValue stores src, a value go-toml parsed at key, into dst; false
// when it could not (a problem was recorded).
func (v *validator) decodeValue(dst reflect.Value, src any, key []string) bool {
	switch dst.Kind() {
	case reflect.Pointer:
		elem := reflect.New(dst.Type().Elem())
		if !v.decodeValue(elem.Elem(), src, key) {
			return false
		}
		dst.Set(elem)
		return true
	case reflect.Struct:
		table, ok := src.(map[string]any)
		if !ok {
			return v.wrongType(key, src, dst.Type())
		}
		fields := tomlFields(dst.Type())
		for _, k := range sortedKeys(table) {
			sub := append(slices.Clip(key), k)
			i, known := fields[k]
			if !known {
				v.unknownKey(sub, k, fields)
				continue
			}
			v.decodeValue(dst.Field(i), table[k], sub)
		}
		return true
	case reflect.Map:
		table, ok := src.(map[string]any)
		if !ok {
			return v.wrongType(key, src, dst.Type())
		}
		m := reflect.MakeMapWithSize(dst.Type(), len(table))
		for _, k := range sortedKeys(table) {
			elem := reflect.New(dst.Type().Elem()).Elem()
			if v.decodeValue(elem, table[k], append(slices.Clip(key), k)) {
				m.SetMapIndex(reflect.ValueOf(k), elem)
			}
		}
		dst.Set(m)
		return true
	case reflect.Slice:
		array, ok := src.([]any)
		if !ok {
			return v.wrongType(key, src, dst.Type())
		}
		if dst.Type().Elem().Kind() == reflect.Interface {
			dst.Set(reflect.ValueOf(slices.Clone(array)))
			return true
		}
		s := reflect.MakeSlice(dst.Type(), len(array), len(array))
		for i, e := range array {
			if !v.scalar(s.Index(i), e) {
				v.typeProblem(key, fmt.Sprintf("wrong type: element %d is a TOML %s where %s is wanted",
					i+1, tomlType(e), describe(dst.Type().Elem())))
				return false
			}
		}
		dst.Set(s)
		return true
	case reflect.Interface:
		// Anything: checked by the validator, which knows what it may be.
		if src != nil {
			dst.Set(reflect.ValueOf(src))
		}
		return true
	default:
		if !v.scalar(dst, src) {
			return v.wrongType(key, src, dst.Type())
		}
		return true
	}
}

// scalar stores a string, integer or boolean of the matching kind.
func (v *validator) scalar(dst reflect.Value, src any) bool {
	switch dst.Kind() {
	case reflect.String:
		s, ok := src.(string)
		if ok {
			dst.SetString(s)
		}
		return ok
	case reflect.Int64:
		n, ok := src.(int64)
		if ok {
			dst.SetInt(n)
		}
		return ok
	case reflect.Bool:
		b, ok := src.(bool)
		if ok {
			dst.SetBool(b)
		}
		return ok
	}
	return false
}

// tomlFields maps a file struct's TOML keys to its field indexes.
func tomlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

func (v *validator) wrongType(key []string, src any, want reflect.Type) bool {
	v.typeProblem(key, fmt.Sprintf("wrong type: a TOML %s where %s is wanted", tomlType(src), describe(want)))
	return false
}

// typeProblem records a value of the wrong type at key.
func (v *validator) typeProblem(key []string, msg string) {
	v.add(key, ErrInvalid, errors.New(msg))
	v.markBad(key)
}

// unknownKey records a key the schema does not have, with the nearest
// known one as a suggestion, or the known ones when none is near.
func (v *validator) unknownKey(key []string, name string, fields map[string]int) {
	known := sortedKeys(fields)
	var msg string
	if near := nearest(name, known); near != "" {
		msg = fmt.Sprintf("unknown key %s: did you mean %s?", formatKey([]string{name}), near)
		if v.suggested == nil {
			v.suggested = make(map[string]bool)
		}
		v.suggested[pathKey(append(slices.Clip(key[:len(key)-1]), near))] = true
	} else if len(key) == 1 {
		msg = fmt.Sprintf("unknown key %s: the top-level tables are %s", formatKey([]string{name}), andList(known))
	} else {
		msg = fmt.Sprintf("unknown key %s: the keys of [%s] are %s", formatKey([]string{name}), formatKey(key[:len(key)-1]), strings.Join(known, ", "))
	}
	v.add(key, ErrUnknownKey, errors.New(msg))
	v.markBad(key)
}

// nearest returns the candidate closest to name when it is close enough to
// be a misspelling of it (an edit or two, a letter case, two letters
// swapped), else "".
func nearest(name string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if strings.EqualFold(name, c) {
			d = 0
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(1, min(len(name), len(best))/3)
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of adjacent bytes.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// tomlType names the TOML type of a value go-toml parsed.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	case time.Time:
		return "offset date-time"
	case toml.LocalDate:
		return "local date"
	case toml.LocalTime:
		return "local time"
	case toml.LocalDateTime:
		return "local date-time"
	}
	return fmt.Sprintf("%T", v)
}

// describe says in the document's terms what a field wants.
func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[tomlDuration]():
		return `a duration string such as "30s"`
	case t == reflect.TypeFor[tomlSize]():
		return `a size string such as "500MiB"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int64:
		return "an integer"
	case reflect.Bool:
		return "a boolean"
	case reflect.Struct, reflect.Map:
		return "a table"
	case reflect.Slice:
		switch t.Elem().Kind() {
		case reflect.String:
			return "an array of strings"
		case reflect.Int64:
			return "an array of integers"
		}
		return "an array"
	}
	return t.String()
}

// andList is "a", "a and b", "a, b and c".
func andList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}
