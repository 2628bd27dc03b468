package statusview

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// sharedPIDStatus is a status whose n children and n connections all
// have one pid, as when one process holds every connection.
func sharedPIDStatus(tb testing.TB, n int) *supervisor.Status {
	tb.Helper()
	var children, conns strings.Builder
	for i := range n {
		if i > 0 {
			children.WriteByte(',')
			conns.WriteByte(',')
		}
		fmt.Fprintf(&children, `{"service":"web","instance":%d,"pid":77,"state":"ready","restarts":0}`, i)
		fmt.Fprintf(&conns, `{"connection_id":"conn-%d","process_id":77,"state":{"name":"web","instance":%d}}`, i, i)
	}
	st := &supervisor.Status{}
	for i, line := range []string{`{"children":[` + children.String() + `]}`, `{"finished":true,"connections":[` + conns.String() + `]}`} {
		m, err := rpc.Parse([]byte(line))
		if err != nil {
			tb.Fatal(err)
		}
		if i == 0 {
			st.Parts = append(st.Parts, m)
		} else {
			st.Final = m
		}
	}
	return st
}

// TestNewSharedPID: children that share a pid claim its connections one
// each, in order, and none is left over as a row of its own.
func TestNewSharedPID(t *testing.T) {
	v := New(sharedPIDStatus(t, 5))
	if len(v.Workers) != 5 {
		t.Fatalf("%d rows, want 5", len(v.Workers))
	}
	for i, w := range v.Workers {
		if w.Name() != fmt.Sprintf("web.%d", i) || w.ConnID != fmt.Sprintf("conn-%d", i) {
			t.Errorf("row %d: %s with connection %q", i, w.Name(), w.ConnID)
		}
	}
}

// BenchmarkNewSharedPID: 10,000 children and connections of one pid (the
// claim walked the pid's chain from its start for each child: quadratic).
func BenchmarkNewSharedPID(b *testing.B) {
	st := sharedPIDStatus(b, 10000)
	for b.Loop() {
		if v := New(st); len(v.Workers) != 10000 {
			b.Fatalf("%d rows", len(v.Workers))
		}
	}
}
