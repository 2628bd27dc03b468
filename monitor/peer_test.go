package monitor

import (
	"os"
	"testing"

	"github.com/vigild/vigil/supervisor"
)

func TestMayName(t *testing.T) {
	self := os.Getpid()
	uid := os.Getuid()
	other := uid + 1000 // a user that owns none of our processes
	cases := []struct {
		name string
		peer supervisor.Credentials
		pid  int
		want bool
	}{
		{"its own process", supervisor.Credentials{PID: 4242, UID: other}, 4242, true},
		{"a process of its user", supervisor.Credentials{PID: 4242, UID: uid}, self, true},
		{"root names anyone", supervisor.Credentials{PID: 4242, UID: 0}, self, true},
		{"another user's process", supervisor.Credentials{PID: 4242, UID: other}, self, uid == 0 && other == 0},
		{"a process that does not exist", supervisor.Credentials{PID: 4242, UID: other}, 1 << 30, false},
	}
	for _, tc := range cases {
		if got := mayName(tc.peer, tc.pid); got != tc.want {
			t.Errorf("%s: mayName = %v, want %v", tc.name, got, tc.want)
		}
	}
}
