package main

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// opSyntheticStatus builds the replies of a status call with n workers
// (connections and the controller's children).
func opSyntheticStatus(b testing.TB, n int) (children, final []byte) {
	var cb, fb strings.Builder
	cb.WriteString(`{"id":2,"children":[`)
	fb.WriteString(`{"id":2,"finished":true,"connections":[`)
	for i := range n {
		if i > 0 {
			cb.WriteByte(',')
			fb.WriteByte(',')
		}
		pid := 1000 + i
		fmt.Fprintf(&cb, `{"service":"svc","instance":%d,"pid":%d,"state":"ready","restarts":0,"last_exit":null,"started_at":"2026-01-02T15:04:05Z","uptime":12.5,"next_restart":null}`, i, pid)
		id := fmt.Sprintf("%08x-1111-4222-8333-444455556666", i)
		fmt.Fprintf(&fb, `{"connection_id":%q,"process_id":%d,"state":{"process_id":%d,"name":"svc","instance":%d,"connection_id":%q}}`, id, pid, pid, i, id)
	}
	cb.WriteString(`],"statistics":{"svc":{"spawns":1,"restarts":0,"failures":0,"restart_rate":0,"failure_rate":0}}}`)
	fb.WriteString(`]}`)
	return []byte(cb.String()), []byte(fb.String())
}

// The client's side of vigil status: decoding the replies, joining them and
// rendering the table.
func BenchmarkOpStatusClientSide(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			children, final := opSyntheticStatus(b, n)
			for b.Loop() {
				cm, _ := rpc.Parse(children)
				fm, _ := rpc.Parse(final)
				st := &supervisor.Status{Parts: []*rpc.Message{cm}, Final: fm}
				if err := renderStatus(io.Discard, statusview.New(st), false, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
