package statusview

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	for _, c := range []struct {
		in   string
		svc  string
		n    int
		isOK bool
	}{
		{"web.0", "web", 0, true},
		{"my.app.12", "my.app", 12, true},
		{"web", "", 0, false},
		{"web.", "", 0, false},
		{".1", "", 0, false},
		{"web.-1", "", 0, false},
		{"web.+1", "", 0, false},
		{"web.x", "", 0, false},
	} {
		svc, n, ok := ParseName(c.in)
		if svc != c.svc || n != c.n || ok != c.isOK {
			t.Errorf("%q: (%q, %d, %v), want (%q, %d, %v)", c.in, svc, n, ok, c.svc, c.n, c.isOK)
		}
	}
}

func TestResolve(t *testing.T) {
	v := New(fixture(t))
	for arg, want := range map[string]string{
		"web.1":     "web.1 (pid 102, connection bbbb1111)",
		"102":       "web.1 (pid 102, connection bbbb1111)",
		"BBBB":      "web.1 (pid 102, connection bbbb1111)",
		"c0ffee":    "controller (pid 100, connection c0ffee00)",
		"100":       "controller (pid 100, connection c0ffee00)",
		"301":       "(unnamed) (pid 301, connection dddd1111)",
		"web.2":     "web.2",
		"cccc1111-": "jobs.0 (pid 201, connection cccc1111)",
	} {
		w, err := v.Resolve(arg)
		if err != nil {
			t.Errorf("%q: %v", arg, err)
			continue
		}
		if got := w.Describe(); got != want {
			t.Errorf("%q: %s, want %s", arg, got, want)
		}
	}
	_, err := v.Resolve("web.9")
	if !errors.Is(err, ErrNoMatch) || !strings.Contains(fmt.Sprint(err), `no worker matches "web.9": the workers are jobs.0 (pid 201, connection cccc1111), web.0 (pid 101, connection aaaa1111)`) {
		t.Errorf("web.9: %v", err)
	}
	if _, err := v.Resolve(""); !errors.Is(err, ErrEmptyName) || !strings.Contains(err.Error(), "WORKER must not be empty: the workers are jobs.0") {
		t.Errorf("empty: %v", err)
	}
	// A prefix shared by two connection ids.
	v.Workers[0].ConnID = "abcd-1"
	v.Workers[1].ConnID = "abcd-2"
	if _, err := v.Resolve("abcd"); !errors.Is(err, ErrAmbiguous) || !strings.Contains(fmt.Sprint(err), `"abcd" is ambiguous: it matches jobs.0 (pid 201, connection abcd-1), web.0 (pid 101, connection abcd-2)`) {
		t.Errorf("ambiguous prefix: %v", err)
	}
}

func TestResolveCandidates(t *testing.T) {
	if _, err := (&View{}).Resolve("web.0"); !errors.Is(err, ErrNoMatch) || !strings.HasSuffix(err.Error(), ": no worker is registered with the supervisor") {
		t.Errorf("no workers: %v", err)
	}
	v := &View{}
	for i := range MaxCandidates + 5 {
		v.Workers = append(v.Workers, &Worker{Service: "svc", Instance: i, PID: 4242})
	}
	_, err := v.Resolve("4242")
	if !errors.Is(err, ErrAmbiguous) || !strings.HasSuffix(err.Error(), "svc.19 (pid 4242), and 5 more (see vigil status)") {
		t.Errorf("bounded list: %v", err)
	}
}
