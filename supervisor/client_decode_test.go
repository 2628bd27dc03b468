package supervisor

import (
	"strings"
	"testing"

	"github.com/vigild/vigil/rpc"
)

// TestConnectionInfos: the status reply's connections are read field by
// field: an escaped id, a key given twice (the last wins), the state raw,
// an entry with neither id nor pid; an entry that is not an object is an
// error that names it.
func TestConnectionInfos(t *testing.T) {
	reply, err := rpc.Parse([]byte(`{"id":1,"connections":[` +
		`{"connection_id":"a\"b","process_id":12,"state":{"name":"w"}},` +
		` {"process_id":1,"connection_id":"x","process_id":7,"state":[1]} ,` +
		`{"state":null}` +
		`],"finished":true}`))
	if err != nil {
		t.Fatal(err)
	}
	list, err := connectionInfos(reply)
	if err != nil {
		t.Fatal(err)
	}
	want := []ConnectionInfo{
		{ConnectionID: `a"b`, ProcessID: 12, State: []byte(`{"name":"w"}`)},
		{ConnectionID: "x", ProcessID: 7, State: []byte(`[1]`)},
		{State: []byte(`null`)},
	}
	if len(list) != len(want) {
		t.Fatalf("%d entries: %+v", len(list), list)
	}
	for i, c := range list {
		w := want[i]
		if c.ConnectionID != w.ConnectionID || c.ProcessID != w.ProcessID || string(c.State) != string(w.State) {
			t.Errorf("entry %d: %+v (state %s), want %+v (state %s)", i, c, c.State, w, w.State)
		}
	}

	reply, err = rpc.Parse([]byte(`{"id":1,"connections":[{"connection_id":"a"},"stray"],"finished":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connectionInfos(reply); err == nil || !strings.Contains(err.Error(), `"stray"`) {
		t.Errorf("a string entry: %v", err)
	}
}
