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

// The original's workers register {process_id, name} and no instance: the
// name they registered names them, and an unknown name lists what would
// have matched.
func TestResolveRegisteredName(t *testing.T) {
	v := New(replies(t, `{"finished":true,"connections":[`+
		`{"connection_id":"e1e1e1e1-0000-4000-8000-000000000001","process_id":501,"state":{"process_id":501,"name":"ruby-worker-0"}},`+
		`{"connection_id":"e2e2e2e2-0000-4000-8000-000000000002","process_id":502,"state":{"process_id":502,"name":"ruby-worker-1"}},`+
		`{"connection_id":"f1f1f1f1-0000-4000-8000-000000000003","process_id":601,"state":{"process_id":601,"name":"web","instance":0}},`+
		`{"connection_id":"f2f2f2f2-0000-4000-8000-000000000004","process_id":602,"state":{"process_id":602,"name":"web","instance":1}}]}`))
	w, err := v.Resolve("ruby-worker-0")
	if err != nil || w.PID != 501 || w.Describe() != "ruby-worker-0 (pid 501, connection e1e1e1e1)" {
		t.Errorf("ruby-worker-0: %v, %v", w, err)
	}
	// A service's name alone is ambiguous when it has several workers.
	if _, err := v.Resolve("web"); !errors.Is(err, ErrAmbiguous) ||
		!strings.Contains(err.Error(), `"web" is ambiguous: it matches web.0 (pid 601, connection f1f1f1f1), web.1 (pid 602, connection f2f2f2f2)`) {
		t.Errorf("web: %v", err)
	}
	// SERVICE.INSTANCE still comes first.
	if w, err := v.Resolve("web.1"); err != nil || w.PID != 602 {
		t.Errorf("web.1: %v, %v", w, err)
	}
	_, err = v.Resolve("ruby-worker-7")
	if !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), `no worker matches "ruby-worker-7": the workers are ruby-worker-0 (pid 501, connection e1e1e1e1), ruby-worker-1 (pid 502`) {
		t.Errorf("ruby-worker-7: %v", err)
	}
}
