package probe

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The defaults of a Spec's zero fields, Kubernetes' own.
const (
	DefaultInterval         = 10 * time.Second
	DefaultTimeout          = 1 * time.Second
	DefaultFailureThreshold = 3
	DefaultSuccessThreshold = 1
)

// MinDuration is the least interval and timeout a Spec accepts.
const MinDuration = time.Millisecond

// Spec describes one probe. Exactly one of HTTP, TCP and Exec is set. A zero
// Interval, Timeout, FailureThreshold or SuccessThreshold takes its default
// (10s, 1s, 3, 1, as in Kubernetes); a zero InitialDelay is none.
type Spec struct {
	// HTTP makes the probe an HTTP GET.
	HTTP *HTTP
	// TCP makes the probe a TCP connect.
	TCP *TCP
	// Exec makes the probe a command that must exit 0.
	Exec *Exec

	// Interval is the time from the start of one attempt to the start of
	// the next: attempts fall due at fixed steps from the first, and the
	// Scheduler may start one a little early to batch it with others
	// (Options.Coalesce). An attempt that takes longer delays the next
	// one: a probe never runs twice at once, and missed attempts are not
	// made up.
	Interval time.Duration
	// Timeout bounds one attempt: connect, request and response together,
	// or the command's whole run (which is then killed, with its process
	// group).
	Timeout time.Duration
	// FailureThreshold is how many attempts in a row must fail before the
	// probe's status becomes StatusFailing.
	FailureThreshold int
	// SuccessThreshold is how many attempts in a row must pass before the
	// probe's status becomes StatusPassing.
	SuccessThreshold int
	// InitialDelay is the wait from Scheduler.Add to the first attempt.
	InitialDelay time.Duration
}

// HTTP is a GET request that passes when the final response's status is in
// Status. Redirects to the same scheme, host and port are followed, at most
// MaxRedirects of them; a redirect elsewhere is not followed and its own
// status decides (as in Kubernetes). An https URL's certificate is not
// verified: the probe asks whether the program answers, not who it is.
// Proxies are never used.
type HTTP struct {
	// URL is the absolute http or https URL to GET.
	URL string
	// Headers are sent with the request; a Host header replaces the URL's
	// host, a User-Agent header replaces vigil-probe/1.
	Headers http.Header
	// Status is the range of statuses that pass; zero is 200 to 399.
	Status StatusRange
}

// MaxRedirects is how many redirects an HTTP probe follows in one attempt;
// one more fails the attempt.
const MaxRedirects = 3

// StatusRange is an inclusive range of HTTP statuses. The zero value means
// 200 to 399; a zero Max means Min alone.
type StatusRange struct {
	// Min is the least status that passes.
	Min int
	// Max is the greatest status that passes.
	Max int
}

// Contains reports whether status is in r (after its defaults).
func (r StatusRange) Contains(status int) bool {
	r = r.withDefaults()
	return status >= r.Min && status <= r.Max
}

func (r StatusRange) withDefaults() StatusRange {
	switch {
	case r.Min == 0 && r.Max == 0:
		return StatusRange{Min: 200, Max: 399}
	case r.Max == 0:
		r.Max = r.Min
	}
	return r
}

// String returns "200-399", or "204" for a range of one.
func (r StatusRange) String() string {
	r = r.withDefaults()
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

// TCP is a connect that passes when the connection is established; it is
// closed at once.
type TCP struct {
	// Address is host:port, as net.Dial takes it.
	Address string
}

// Exec is a command that passes when it exits 0. It runs through the
// scheduler's Runner.
type Exec struct {
	// Argv is the command and its arguments; Argv[0] is looked up in PATH
	// when it has no slash.
	Argv []string
	// Env is the command's environment as KEY=value; nil is the Runner's
	// default (os/exec's: this process's environment).
	Env []string
	// Dir is the working directory; empty is the Runner's default.
	Dir string
}

// FieldError is a Spec's validation error: the field at fault, named as in
// a configuration file (interval, http.url, exec.env[2]), and why. A
// configuration layer maps it to its own key and line.
type FieldError struct {
	// Field names the field, lower case with underscores and dots.
	Field string
	// Err says what is wrong with it.
	Err error
}

// Error returns "probe FIELD: REASON".
func (e *FieldError) Error() string { return "probe " + e.Field + ": " + e.Err.Error() }

// Unwrap returns e.Err.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Kind returns "http", "tcp" or "exec", or "" when no kind or several are set.
func (s Spec) Kind() string {
	kind, n := "", 0
	if s.HTTP != nil {
		kind, n = "http", n+1
	}
	if s.TCP != nil {
		kind, n = "tcp", n+1
	}
	if s.Exec != nil {
		kind, n = "exec", n+1
	}
	if n != 1 {
		return ""
	}
	return kind
}

// String describes the probe in a few words: "http GET URL", "tcp ADDRESS",
// "exec [ARGV]".
func (s Spec) String() string {
	switch s.Kind() {
	case "http":
		return "http GET " + s.HTTP.URL
	case "tcp":
		return "tcp " + s.TCP.Address
	case "exec":
		return fmt.Sprintf("exec %q", s.Exec.Argv)
	}
	return "invalid probe"
}

// WithDefaults returns s with its zero fields set to their defaults.
func (s Spec) WithDefaults() Spec {
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.FailureThreshold == 0 {
		s.FailureThreshold = DefaultFailureThreshold
	}
	if s.SuccessThreshold == 0 {
		s.SuccessThreshold = DefaultSuccessThreshold
	}
	return s
}

// Validate returns a *FieldError for the first thing wrong with s (zero
// fields being their defaults): not exactly one kind, a negative or tiny
// duration, a negative threshold, an http URL that is not absolute http or
// https, a status range outside 100-599 or upside down, a header name or
// value that cannot be sent, a tcp address that is not host:port, an empty
// command, an environment entry without '='.
func (s Spec) Validate() error {
	n := 0
	for _, set := range []bool{s.HTTP != nil, s.TCP != nil, s.Exec != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fieldErr("kind", "want exactly one of http, tcp and exec, got %d", n)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
		zero  bool // zero allowed as such (not a default)
	}{{"interval", s.Interval, false}, {"timeout", s.Timeout, false}, {"initial_delay", s.InitialDelay, true}} {
		switch {
		case d.v < 0:
			return fieldErr(d.field, "must not be negative, got %v", d.v)
		case d.v > 0 && d.v < MinDuration && !d.zero:
			return fieldErr(d.field, "must be at least %v, got %v", MinDuration, d.v)
		}
	}
	if s.FailureThreshold < 0 {
		return fieldErr("failure_threshold", "must not be negative, got %d", s.FailureThreshold)
	}
	if s.SuccessThreshold < 0 {
		return fieldErr("success_threshold", "must not be negative, got %d", s.SuccessThreshold)
	}
	switch {
	case s.HTTP != nil:
		return s.HTTP.validate()
	case s.TCP != nil:
		return s.TCP.validate()
	default:
		return s.Exec.validate()
	}
}

func (h *HTTP) validate() error {
	if _, err := parseProbeURL(h.URL); err != nil {
		return &FieldError{Field: "http.url", Err: err}
	}
	r := h.Status
	switch {
	case r.Min < 0 || r.Max < 0:
		return fieldErr("http.status", "must not be negative, got %d-%d", r.Min, r.Max)
	case r.Min == 0 && r.Max != 0:
		return fieldErr("http.status", "has a maximum (%d) but no minimum", r.Max)
	}
	r = r.withDefaults()
	if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
		return fieldErr("http.status", "want a range within 100-599 with min <= max, got %d-%d", r.Min, r.Max)
	}
	for name, values := range h.Headers {
		if name == "" || strings.IndexFunc(name, notTokenChar) >= 0 {
			return fieldErr("http.headers", "%q is not a valid header name", name)
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				return fieldErr("http.headers", "the value of %s contains a line break or NUL", name)
			}
		}
	}
	return nil
}

// parseProbeURL parses an absolute http or https URL with a host and a
// valid port (if any) and no credentials.
func parseProbeURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: want an http:// or https:// URL", raw)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%q: has no host", raw)
	}
	if p := u.Port(); p != "" {
		if err := checkPort(p); err != nil {
			return nil, fmt.Errorf("%q: %w", raw, err)
		}
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q: credentials in the URL are not sent; use an Authorization header", raw)
	}
	return u, nil
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return nil
}

// notTokenChar reports whether r may not appear in a header name (RFC 9110
// token).
func notTokenChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

func (t *TCP) validate() error {
	host, port, err := net.SplitHostPort(t.Address)
	if err != nil {
		return fieldErr("tcp.address", "%q: want host:port, e.g. 127.0.0.1:8080", t.Address)
	}
	if strings.ContainsAny(host, " /") {
		return fieldErr("tcp.address", "%q: %q is not a host name or address", t.Address, host)
	}
	if err := checkPort(port); err != nil {
		return fieldErr("tcp.address", "%q: %w", t.Address, err)
	}
	return nil
}

func (e *Exec) validate() error {
	if len(e.Argv) == 0 {
		return fieldErr("exec.argv", "the command is empty")
	}
	if e.Argv[0] == "" {
		return fieldErr("exec.argv[0]", "the program name is empty")
	}
	for i, kv := range e.Argv {
		if strings.ContainsRune(kv, 0) {
			return fieldErr(fmt.Sprintf("exec.argv[%d]", i), "contains NUL")
		}
	}
	for i, kv := range e.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsRune(kv, 0) {
			return fieldErr(fmt.Sprintf("exec.env[%d]", i), "%q: want KEY=value", kv)
		}
	}
	return nil
}
