package worker

import (
	"encoding/json"
	"testing"
)

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "goroutine 1 [running]:\n\tmain.go:1 +0x1d\n", `"quoted" \back\`, "\x00\x1f\x7f", "héllo ✓", "bad \xff\xfe utf8", "\u2028"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		got := appendJSONString([]byte("prefix"), text)
		if string(got[:6]) != "prefix" {
			t.Fatalf("prefix clobbered: %q", got)
		}
		got = got[6:]
		if !json.Valid(got) {
			t.Fatalf("invalid JSON for %q: %s", text, got)
		}
		want, _ := json.Marshal(string(text))
		var a, b string
		json.Unmarshal(got, &a)
		json.Unmarshal(want, &b)
		if a != b {
			t.Fatalf("decodes to %q, encoding/json's to %q", a, b)
		}
	})
}
