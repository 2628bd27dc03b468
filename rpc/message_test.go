package rpc

import "testing"

func TestInt(t *testing.T) {
	for raw, want := range map[string]int64{"0": 0, "42": 42, "-7": -7, "1234567890123456789": 1234567890123456789,
		"-9223372036854775808": -9223372036854775808} {
		if n, ok := Int([]byte(raw)); !ok || n != want {
			t.Errorf("Int(%s) = %d, %v; want %d", raw, n, ok, want)
		}
	}
	for _, raw := range []string{"", "-", "1.5", "1e3", `"3"`, "null", "12345678901234567890", "+1",
		"9999999999999999999", "-9223372036854775809", " 1"} {
		if n, ok := Int([]byte(raw)); ok {
			t.Errorf("Int(%s) = %d, true; want false", raw, n)
		}
	}
}
