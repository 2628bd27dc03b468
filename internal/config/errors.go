package config

import (
	"errors"
	"fmt"
	"strings"
)

// Errors that callers may test with errors.Is. Every *Error wraps one of
// them.
var (
	// ErrUnknownKey: the document has a key that vigil does not know.
	ErrUnknownKey = errors.New("unknown key")
	// ErrInvalid: a syntax error, a value of the wrong type, or a bad
	// value (a bad duration or size, a negative count, an empty command...).
	ErrInvalid = errors.New("invalid value")
)

// Error is one problem of a configuration, at a place in its document.
// Parse and Load return either one *Error or several joined with
// errors.Join, sorted by line; errors.As finds the first.
type Error struct {
	// Path is the configuration file, "" when parsed from bytes.
	Path string
	// Line and Column are 1-based; 0 when the problem has no place in the
	// document (a key left out, an environment variable).
	Line, Column int
	// Key is the dotted key, e.g. "services.web.count", or the name of an
	// environment variable.
	Key string
	// Err describes the problem.
	Err  error
	kind error
}

// Error returns "PATH:LINE: KEY: PROBLEM" ("line LINE: ..." without a
// path).
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Path != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.Path, e.Line)
	case e.Path != "":
		fmt.Fprintf(&b, "%s: ", e.Path)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the kind (ErrUnknownKey or ErrInvalid) and the cause.
func (e *Error) Unwrap() []error { return []error{e.kind, e.Err} }

// formatKey writes a key path as TOML would, quoting parts that need it.
func formatKey(parts []string) string {
	out := make([]string, len(parts))
	for i, p := range parts {
		if bareKey(p) {
			out[i] = p
		} else {
			out[i] = fmt.Sprintf("%q", p)
		}
	}
	return strings.Join(out, ".")
}

func bareKey(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
