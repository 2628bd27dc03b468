package supervisor

import "testing"

func TestCapToDescriptors(t *testing.T) {
	for _, tc := range []struct {
		max, fds, want int
		capped         bool
	}{
		{10000, 0, 10000, false},       // no limit known
		{10000, 1 << 20, 10000, false}, // room enough
		{10000, 1024, 1024 - descriptorReserve, true},
		{100, 164, 100, false}, // exactly what fits
		{100, 163, 99, true},
		{100, 10, 1, true}, // never below one
	} {
		l := Limits{MaxConnections: tc.max}
		if got := l.capToDescriptors(tc.fds); got != tc.capped || l.MaxConnections != tc.want {
			t.Errorf("max %d, %d descriptors: capped %v, MaxConnections %d; want %v, %d", tc.max, tc.fds, got, l.MaxConnections, tc.capped, tc.want)
		}
	}
}
