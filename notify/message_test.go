package notify

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestMessageMarshal(t *testing.T) {
	tests := []struct {
		name string
		in   Message
		want string
	}{
		{"empty", Message{}, `{}`},
		{"ready", Message{Ready: Bool(true)}, `{"ready":true}`},
		{"status", Message{Status: "Preparing..."}, `{"status":"Preparing..."}`},
		{"healthy", Message{Healthy: true}, `{"healthy":true}`},
		{"reloading", Message{Reloading: true, Ready: Bool(false)}, `{"ready":false,"reloading":true}`},
		{"restarting", Message{Restarting: true}, `{"restarting":true}`},
		{"stopping", Message{Stopping: true}, `{"stopping":true}`},
		{"error", Message{Status: "boom", Errno: -1}, `{"status":"boom","errno":-1}`},
		{"newline escaped", Message{Status: "a\nb"}, `{"status":"a\nb"}`},
		{"extra sorted and compacted", Message{Extra: map[string]json.RawMessage{"z": json.RawMessage(`1`), "a": json.RawMessage("{ \"x\" :\n [1, 2] }")}}, `{"a":{"x":[1,2]},"z":1}`},
		{"extra cannot override known", Message{Ready: Bool(true), Extra: map[string]json.RawMessage{"ready": json.RawMessage(`false`)}}, `{"ready":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestMessageMarshalBadExtra(t *testing.T) {
	_, err := json.Marshal(Message{Extra: map[string]json.RawMessage{"k": json.RawMessage(`{`)}})
	if err == nil || !strings.Contains(err.Error(), `"k"`) {
		t.Fatalf("want an error naming the field, got %v", err)
	}
}

func TestMessageUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Message
		wantErr string
	}{
		{name: "ready", in: `{"ready":true}`, want: Message{Ready: Bool(true)}},
		{name: "not ready", in: `{"reloading":true,"ready":false}`, want: Message{Reloading: true, Ready: Bool(false)}},
		{name: "null ready", in: `{"ready":null}`, want: Message{}},
		{name: "all", in: `{"healthy":true,"restarting":true,"stopping":true,"watchdog":true,"status":"s","errno":-1}`,
			want: Message{Healthy: true, Restarting: true, Stopping: true, Watchdog: true, Status: "s", Errno: -1}},
		{name: "extra kept", in: `{"ready":true,"size":12,"who":"me"}`,
			want: Message{Ready: Bool(true), Extra: map[string]json.RawMessage{"size": json.RawMessage(`12`), "who": json.RawMessage(`"me"`)}}},
		{name: "array", in: `[1]`, wantErr: "not a JSON object"},
		{name: "string", in: `"ready"`, wantErr: "not a JSON object"},
		{name: "null", in: `null`, wantErr: "not a JSON object"},
		{name: "wrong type", in: `{"ready":"yes"}`, wantErr: `"ready"`},
		{name: "wrong errno", in: `{"errno":1.5}`, wantErr: `"errno"`},
		{name: "truncated", in: `{"ready":`, wantErr: "unexpected end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Message
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	var m Message
	if err := m.UnmarshalJSON([]byte(`[]`)); !errors.Is(err, ErrNotObject) {
		t.Fatalf("want ErrNotObject, got %v", err)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	in := Message{Ready: Bool(false), Healthy: true, Reloading: true, Restarting: true, Stopping: true,
		Watchdog: true, Status: "x\ty", Errno: 7, Extra: map[string]json.RawMessage{"k": json.RawMessage(`[1,2]`)}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Message
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
}

func TestHelpers(t *testing.T) {
	var sb strings.Builder
	c := NewWriterClient(&sb)
	steps := []struct {
		send func() error
		want string
	}{
		{func() error { return Status(c, "Preparing...") }, `{"status":"Preparing..."}`},
		{func() error { return Ready(c, "") }, `{"ready":true}`},
		{func() error { return Ready(c, "Running with 2 children.") }, `{"ready":true,"status":"Running with 2 children."}`},
		{func() error { return Healthy(c) }, `{"healthy":true}`},
		{func() error { return Reloading(c, "") }, `{"ready":false,"reloading":true}`},
		{func() error { return Restarting(c, "r") }, `{"ready":false,"restarting":true,"status":"r"}`},
		{func() error { return Stopping(c, "") }, `{"stopping":true}`},
		{func() error { return Error(c, "failed", 0) }, `{"status":"failed","errno":-1}`},
		{func() error { return Error(c, "enoent", 2) }, `{"status":"enoent","errno":2}`},
		{func() error { return c.Send(Message{Watchdog: true}) }, ``},
	}
	var want strings.Builder
	for _, s := range steps {
		if err := s.send(); err != nil {
			t.Fatal(err)
		}
		if s.want != "" {
			want.WriteString(s.want + "\n")
		}
	}
	if sb.String() != want.String() {
		t.Fatalf("got\n%s\nwant\n%s", sb.String(), want.String())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Ready(c, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: want ErrClosed, got %v", err)
	}
}

func TestEncodeSystemd(t *testing.T) {
	clock := func() (uint64, bool) { return 123456, true }
	noClock := func() (uint64, bool) { return 0, false }
	tests := []struct {
		name  string
		in    Message
		clock func() (uint64, bool)
		want  string
	}{
		{"empty", Message{}, clock, ""},
		{"ready", Message{Ready: Bool(true)}, clock, "READY=1\n"},
		{"not ready alone", Message{Ready: Bool(false)}, clock, ""},
		{"healthy has no equivalent", Message{Healthy: true}, clock, ""},
		{"status", Message{Status: "Preparing..."}, clock, "STATUS=Preparing...\n"},
		{"status newlines", Message{Status: "a\nb\r\nc"}, clock, "STATUS=a b c\n"},
		{"reloading", Message{Reloading: true, Ready: Bool(false)}, clock, "RELOADING=1\nMONOTONIC_USEC=123456\n"},
		{"reloading no clock", Message{Reloading: true}, noClock, "RELOADING=1\n"},
		{"restarting is a reload", Message{Restarting: true}, clock, "RELOADING=1\nMONOTONIC_USEC=123456\n"},
		{"stopping", Message{Stopping: true, Status: "bye"}, clock, "STOPPING=1\nSTATUS=bye\n"},
		{"watchdog", Message{Watchdog: true}, clock, "WATCHDOG=1\n"},
		{"errno", Message{Status: "x", Errno: 2}, clock, "STATUS=x\nERRNO=2\n"},
		{"negative errno left out", Message{Status: "x", Errno: -1}, clock, "STATUS=x\n"},
		{"extras", Message{Extra: map[string]json.RawMessage{
			"mainpid": json.RawMessage(`42`), "b": json.RawMessage(`true`), "c": json.RawMessage(`false`),
			"bad-key": json.RawMessage(`1`), "obj": json.RawMessage(`{}`), "nl": json.RawMessage(`"a\nb"`),
			"s": json.RawMessage(`"v"`), "ready": json.RawMessage(`true`)}}, clock, "B=1\nC=0\nMAINPID=42\nS=v\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(encodeSystemd(tt.in, tt.clock)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
