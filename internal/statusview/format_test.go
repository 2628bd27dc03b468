package statusview

import "testing"

func TestFormats(t *testing.T) {
	for in, want := range map[float64]string{-1: "-", 0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 10 << 20: "10.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := FormatSize(in); got != want {
			t.Errorf("FormatSize(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[float64]string{-1: "-", 0.4: "0s", 59.9: "59s", 61: "1m01s", 3600: "1h00m", 90061: "1d01h"} {
		if got := FormatUptime(in); got != want {
			t.Errorf("FormatUptime(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[float64]string{-1: "-", 0: "0.0%", 12.34: "12.3%"} {
		if got := FormatCPU(in); got != want {
			t.Errorf("FormatCPU(%v) = %q, want %q", in, got, want)
		}
	}
}
