package logs

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestUnderJournal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  string
		want bool
	}{
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino), true},
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), false},
		{"", false},
		{"garbage", false},
		{"1:x", false},
	} {
		if got := underJournal(tc.env, f); got != tc.want {
			t.Errorf("JOURNAL_STREAM=%q: %v, want %v", tc.env, got, tc.want)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	for _, tc := range []struct {
		s    Settings
		want string
	}{
		{Settings{}, ""},
		{DefaultSettings(), ""},
		{Settings{Format: "yaml"}, `format "yaml": want "text" or "json"`},
		{Settings{MaxSize: -1}, "max size -1: must not be negative"},
		{Settings{Keep: -1}, "keep -1: must not be negative"},
		{Settings{RingLines: -5}, "ring lines -5: must not be negative"},
	} {
		err := tc.s.Validate()
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
}

func TestParseStream(t *testing.T) {
	for in, want := range map[string]Stream{"stdout": Stdout, "stderr": Stderr, "": 0} {
		if got, err := ParseStream(in); err != nil || got != want || got.String() != in {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseStream("both"); err == nil {
		t.Error("ParseStream(both) succeeded")
	}
}
