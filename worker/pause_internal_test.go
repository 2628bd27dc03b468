package worker

import (
	"testing"
	"time"
)

func TestReconnectPause(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		failures int
		r        float64
		want     time.Duration
	}{
		{0, 0, 50 * ms},           // first pause: half of min at the lowest jitter
		{0, 0.999999, 100 * ms},   // … up to min
		{1, 0, 100 * ms},          // doubles
		{2, 0.5, 300 * ms},        // 400ms × 0.75
		{4, 0.999999, 1600 * ms},  // 1.6s
		{5, 0.999999, 3000 * ms},  // capped: 3.2s → 3s
		{50, 0.999999, 3000 * ms}, // stays capped, no overflow
		{1000, 0, 1500 * ms},      // capped, lowest jitter
	} {
		got := reconnectPause(tc.failures, 100*ms, 3*time.Second, tc.r)
		if d := got - tc.want; d < -ms || d > ms {
			t.Errorf("reconnectPause(%d, r=%v) = %v, want %v", tc.failures, tc.r, got, tc.want)
		}
	}
}

func TestPackageOf(t *testing.T) {
	for fn, want := range map[string]string{
		"main.leak":                             "main",
		"example.com/a/b.(*T).M":                "example.com/a/b",
		"example.com/a/b.f.func1":               "example.com/a/b",
		"github.com/x/y.v2/z.Do":                "github.com/x/y.v2/z",
		"runtime.mallocgc":                      "runtime",
		"gopkg.in/yaml.v3.(*decoder).unmarshal": "gopkg.in/yaml",
		"noDotAtAll":                            "noDotAtAll",
	} {
		if got := packageOf(fn); got != want {
			t.Errorf("packageOf(%q) = %q, want %q", fn, got, want)
		}
	}
}
