package logs

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// checkJSONLines parses out line by line as the JSON console's objects
// and checks them against want (text -> stream).
func checkJSONLines(t *testing.T, out string, want map[string]string, service string, instance int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Errorf("%d JSON lines, want %d:\n%s", len(lines), len(want), out)
	}
	for _, l := range lines {
		var o struct {
			Time     time.Time `json:"time"`
			Service  string    `json:"service"`
			Instance *int      `json:"instance"`
			PID      int       `json:"pid"`
			Stream   string    `json:"stream"`
			Line     *string   `json:"line"`
		}
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			t.Errorf("line %q: %v", l, err)
			continue
		}
		if o.Line == nil || o.Instance == nil {
			t.Errorf("line %q lacks a field", l)
			continue
		}
		stream, ok := want[*o.Line]
		if !ok || stream != o.Stream || o.Service != service || *o.Instance != instance || o.PID <= 0 ||
			time.Since(o.Time) > time.Hour || o.Time.Location() != time.UTC {
			t.Errorf("line %q: unexpected %+v", l, o)
		}
	}
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\`, "\n\r\t\x00\x1f\x7f", "é€😀", "\xff\xfe", "a\u2028b\u2029", "\xed\xa0\x80"} {
		checkJSONString(t, []byte(s))
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"x", "\x00\"\\", "\xe2\x80\xa8", "\xc3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(checkJSONString)
}

func checkJSONString(t *testing.T, s []byte) {
	got := append(appendJSONString([]byte{'"'}, s), '"')
	if !json.Valid(got) {
		t.Fatalf("%q: invalid JSON %s", s, got)
	}
	var back string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	want := strings.ToValidUTF8(string(s), "\ufffd")
	// encoding/json replaces each bad byte; ToValidUTF8 a run of them.
	if !utf8.Valid(s) {
		var b strings.Builder
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRune(s[i:])
			b.WriteRune(r)
			i += n
		}
		want = b.String()
	}
	if back != want {
		t.Fatalf("%q: decodes to %q, want %q", s, back, want)
	}
}
