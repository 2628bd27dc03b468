package statusview

import (
	"slices"
	"testing"
	"time"
)

func TestStatusText(t *testing.T) {
	for _, c := range []struct{ state, text, want string }{
		{"ready", "starting", ""}, // the goworker's text before it was ready
		{"ready", "Starting...", ""},
		{"starting", "starting", "starting"},
		{"starting", "Preparing...", "Preparing..."},
		{"ready", "Running with 4 children.", "Running with 4 children."},
		{"ready", "healthy", "healthy"},
		{"unhealthy", "healthy", ""},
		{"stopping", "ready", ""},
		{"backing off", "Stopping.", ""},
		{"ready", "", ""},
	} {
		if got := StatusText(c.state, c.text); got != c.want {
			t.Errorf("StatusText(%q, %q) = %q, want %q", c.state, c.text, got, c.want)
		}
	}
}

func TestCountdown(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0.0s"},
		{0, "0.0s"},
		{3200 * time.Millisecond, "3.2s"},
		{9949 * time.Millisecond, "9.9s"},
		{42*time.Second + 900*time.Millisecond, "42s"},
		{4*time.Minute + 5*time.Second, "4m05s"},
		{2*time.Hour + 7*time.Minute + 30*time.Second, "2h07m"},
	} {
		if got := Countdown(c.d); got != c.want {
			t.Errorf("Countdown(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

// The fixture's web.2 backs off until 16:05:00; its status text and its
// connection's outputs come through.
func TestNewStateDetails(t *testing.T) {
	v := New(replies(t,
		`{"children":[`+
			`{"service":"web","instance":0,"pid":101,"state":"ready","status":"starting"},`+
			`{"service":"web","instance":1,"pid":0,"state":"backing off","next_restart":"2026-01-02T16:05:00.5Z","last_error":"exec: no such file"},`+
			`{"service":"web","instance":2,"pid":103,"state":"starting","status":"Preparing..."}]}`,
		`{"finished":true,"connections":[`+
			`{"connection_id":"a1","process_id":101,"state":{"process_id":101,"name":"web","instance":0,"outputs":["inline","path","log"]}},`+
			`{"connection_id":"a3","process_id":103,"state":{"process_id":103,"name":"web","instance":2}}]}`))
	if len(v.Workers) != 3 {
		t.Fatalf("%d rows", len(v.Workers))
	}
	w0, w1, w2 := v.Workers[0], v.Workers[1], v.Workers[2]
	if w0.Status != "" || w2.Status != "Preparing..." {
		t.Errorf("status texts %q, %q; want none beside ready, Preparing...", w0.Status, w2.Status)
	}
	if !w0.SaysInline() || !slices.Equal(w0.Outputs, []string{"inline", "path", "log"}) || w2.SaysInline() || w2.Outputs != nil {
		t.Errorf("outputs %v, %v", w0.Outputs, w2.Outputs)
	}
	now := time.Date(2026, 1, 2, 16, 4, 57, 300e6, time.UTC)
	if got := w1.StateText(now); got != "backing off 3.2s" {
		t.Errorf("StateText = %q, want backing off 3.2s", got)
	}
	if got := w1.StateText(now.Add(time.Minute)); got != "backing off 0.0s" {
		t.Errorf("StateText once due = %q", got)
	}
	if got := w0.StateText(now); got != "ready" {
		t.Errorf("StateText of a ready worker = %q", got)
	}
	if w1.LastError != "exec: no such file" {
		t.Errorf("last error %q", w1.LastError)
	}
}
