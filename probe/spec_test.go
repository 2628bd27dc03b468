package probe

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	web := func(u string) *HTTP { return &HTTP{URL: u} }
	tests := []struct {
		name  string
		spec  Spec
		field string // "" for valid
		text  string // in the error
	}{
		{"http", Spec{HTTP: web("http://127.0.0.1:8080/healthz")}, "", ""},
		{"https without port", Spec{HTTP: web("https://localhost/")}, "", ""},
		{"ipv6", Spec{HTTP: web("http://[::1]:80/x?y=1")}, "", ""},
		{"tcp", Spec{TCP: &TCP{Address: "127.0.0.1:5432"}}, "", ""},
		{"tcp any host", Spec{TCP: &TCP{Address: ":5432"}}, "", ""},
		{"exec", Spec{Exec: &Exec{Argv: []string{"pg_isready"}, Env: []string{"A=b", "C="}}}, "", ""},
		{"every field", Spec{TCP: &TCP{Address: "h:1"}, Interval: time.Second, Timeout: time.Second,
			FailureThreshold: 5, SuccessThreshold: 2, InitialDelay: time.Minute}, "", ""},
		{"status one", Spec{HTTP: &HTTP{URL: "http://h/", Status: StatusRange{Min: 204}}}, "", ""},
		{"headers", Spec{HTTP: &HTTP{URL: "http://h/", Headers: http.Header{"X-Token": {"a b"}}}}, "", ""},

		{"no kind", Spec{}, "kind", "got 0"},
		{"two kinds", Spec{HTTP: web("http://h/"), TCP: &TCP{Address: "h:1"}}, "kind", "got 2"},
		{"negative interval", Spec{TCP: &TCP{Address: "h:1"}, Interval: -time.Second}, "interval", "negative"},
		{"tiny interval", Spec{TCP: &TCP{Address: "h:1"}, Interval: time.Microsecond}, "interval", "at least 1ms"},
		{"negative timeout", Spec{TCP: &TCP{Address: "h:1"}, Timeout: -1}, "timeout", "negative"},
		{"negative delay", Spec{TCP: &TCP{Address: "h:1"}, InitialDelay: -1}, "initial_delay", "negative"},
		{"negative failure", Spec{TCP: &TCP{Address: "h:1"}, FailureThreshold: -1}, "failure_threshold", "negative"},
		{"negative success", Spec{TCP: &TCP{Address: "h:1"}, SuccessThreshold: -2}, "success_threshold", "negative"},
		{"empty url", Spec{HTTP: web("")}, "http.url", "empty"},
		{"relative url", Spec{HTTP: web("/healthz")}, "http.url", "http:// or https://"},
		{"ftp url", Spec{HTTP: web("ftp://h/")}, "http.url", "http:// or https://"},
		{"no host", Spec{HTTP: web("http:///x")}, "http.url", "no host"},
		{"bad port", Spec{HTTP: web("http://h:99999/")}, "http.url", "port"},
		{"credentials", Spec{HTTP: web("http://u:p@h/")}, "http.url", "Authorization"},
		{"unparsable", Spec{HTTP: web("http://h/%zz")}, "http.url", "invalid"},
		{"status upside down", Spec{HTTP: &HTTP{URL: "http://h/", Status: StatusRange{Min: 300, Max: 200}}}, "http.status", "300-200"},
		{"status 600", Spec{HTTP: &HTTP{URL: "http://h/", Status: StatusRange{Min: 200, Max: 600}}}, "http.status", "100-599"},
		{"status max alone", Spec{HTTP: &HTTP{URL: "http://h/", Status: StatusRange{Max: 299}}}, "http.status", "no minimum"},
		{"header name", Spec{HTTP: &HTTP{URL: "http://h/", Headers: http.Header{"X Y": {"1"}}}}, "http.headers", `"X Y"`},
		{"header value", Spec{HTTP: &HTTP{URL: "http://h/", Headers: http.Header{"X": {"a\r\nEvil: 1"}}}}, "http.headers", "line break"},
		{"tcp no port", Spec{TCP: &TCP{Address: "127.0.0.1"}}, "tcp.address", "host:port"},
		{"tcp port", Spec{TCP: &TCP{Address: "127.0.0.1:http"}}, "tcp.address", "port"},
		{"tcp port 0", Spec{TCP: &TCP{Address: "127.0.0.1:0"}}, "tcp.address", "port"},
		{"exec empty", Spec{Exec: &Exec{}}, "exec.argv", "empty"},
		{"exec empty name", Spec{Exec: &Exec{Argv: []string{""}}}, "exec.argv[0]", "empty"},
		{"exec NUL", Spec{Exec: &Exec{Argv: []string{"a", "b\x00"}}}, "exec.argv[1]", "NUL"},
		{"exec env", Spec{Exec: &Exec{Argv: []string{"a"}, Env: []string{"A=1", "B"}}}, "exec.env[1]", "KEY=value"},
		{"exec env no key", Spec{Exec: &Exec{Argv: []string{"a"}, Env: []string{"=1"}}}, "exec.env[0]", "KEY=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a *FieldError", err)
			}
			if fe.Field != tt.field || !strings.Contains(err.Error(), tt.text) || !strings.HasPrefix(err.Error(), "probe "+tt.field+": ") {
				t.Fatalf("got field %q, error %q; want field %q and %q in it", fe.Field, err, tt.field, tt.text)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	got := Spec{TCP: &TCP{Address: "h:1"}}.WithDefaults()
	if got.Interval != 10*time.Second || got.Timeout != time.Second || got.FailureThreshold != 3 ||
		got.SuccessThreshold != 1 || got.InitialDelay != 0 {
		t.Fatalf("got %+v", got)
	}
	set := Spec{TCP: &TCP{Address: "h:1"}, Interval: 2 * time.Second, Timeout: 3 * time.Second,
		FailureThreshold: 4, SuccessThreshold: 5, InitialDelay: 6 * time.Second}
	if again := set.WithDefaults(); again != set {
		t.Fatalf("WithDefaults changed set fields: %+v", again)
	}
}

func TestStatusRange(t *testing.T) {
	tests := []struct {
		r    StatusRange
		in   []int
		out  []int
		text string
	}{
		{StatusRange{}, []int{200, 204, 301, 399}, []int{199, 400, 500}, "200-399"},
		{StatusRange{Min: 204}, []int{204}, []int{200, 205}, "204"},
		{StatusRange{Min: 200, Max: 499}, []int{200, 404}, []int{500}, "200-499"},
	}
	for _, tt := range tests {
		for _, s := range tt.in {
			if !tt.r.Contains(s) {
				t.Errorf("%v does not contain %d", tt.r, s)
			}
		}
		for _, s := range tt.out {
			if tt.r.Contains(s) {
				t.Errorf("%v contains %d", tt.r, s)
			}
		}
		if got := tt.r.String(); got != tt.text {
			t.Errorf("String: %q, want %q", got, tt.text)
		}
	}
}

func TestSpecString(t *testing.T) {
	for spec, want := range map[*Spec]string{
		{HTTP: &HTTP{URL: "http://h/x"}}:                  "http GET http://h/x",
		{TCP: &TCP{Address: "h:1"}}:                       "tcp h:1",
		{Exec: &Exec{Argv: []string{"pg_isready", "-q"}}}: `exec ["pg_isready" "-q"]`,
		{}: "invalid probe",
	} {
		if got := spec.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if got := spec.Kind(); (got == "") != (want == "invalid probe") {
			t.Errorf("Kind of %q: %q", want, got)
		}
	}
}
