package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{"0", 0, ""},
		{"1024", 1024, ""},
		{"1024B", 1024, ""},
		{"500MiB", 500 * MiB, ""},
		{"1GiB", GiB, ""},
		{"1.5GiB", GiB + GiB/2, ""},
		{"10MB", 10_000_000, ""},
		{"10 MB", 10_000_000, ""},
		{" 2KiB ", 2048, ""},
		{"3kB", 3000, ""},
		{"3KB", 3000, ""},
		{"1TiB", TiB, ""},
		{"2TB", 2 * TB, ""},
		{"", 0, "invalid size"},
		{"MiB", 0, "invalid size"},
		{"10XB", 0, "invalid size"},
		{"10mib", 0, "invalid size"},
		{"-1", 0, "negative"},
		{"-10MiB", 0, "negative"},
		{"1.2.3MiB", 0, "bad number"},
		{"99999999999999999999", 0, "too large"},
		{"9000000TiB", 0, "too large"},
		{"1e30GiB", 0, "invalid size"}, {"1.0e400", 0, "invalid size"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSize(%q) = %d, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0"}, {1, "1"}, {1023, "1023"}, {1024, "1KiB"}, {10 * MiB, "10MiB"},
		{GiB + GiB/2, "1536MiB"}, {3 * TiB, "3TiB"}, {10_000_000, "10MB"}, {3000, "3kB"}, {1001, "1001"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		back, err := ParseSize(tt.in.String())
		if err != nil || back != tt.in {
			t.Errorf("round trip of %d: %d, %v", int64(tt.in), back, err)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"30s", 30 * time.Second, ""},
		{"1m30s", 90 * time.Second, ""},
		{"100ms", 100 * time.Millisecond, ""},
		{"0", 0, ""},
		{"0s", 0, ""},
		{"-1s", 0, "negative"},
		{"5", 0, "invalid duration"},
		{"soon", 0, "invalid duration"},
		{"", 0, "invalid duration"},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: got %v, %v; want error %q", tt.in, d, err, tt.wantErr)
			}
			continue
		}
		if err != nil || d.D() != tt.want {
			t.Errorf("%q: got %v, %v; want %v", tt.in, d, err, tt.want)
		}
		text, _ := d.MarshalText()
		var back Duration
		if err := back.UnmarshalText(text); err != nil || back != d {
			t.Errorf("round trip of %q via %q: %v, %v", tt.in, text, back, err)
		}
	}
}
