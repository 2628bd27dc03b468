package main

import (
	"bytes"
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

// The client's side of vigil status, in its steps: parsing the replies
// (rpc validates and indexes each line), joining them into rows
// (statusview), and rendering the table; then the three together.
func BenchmarkOpStatusClientSide(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		children, final := opSyntheticStatus(b, n)
		parse := func() *supervisor.Status {
			cm, err1 := rpc.Parse(bytes.Clone(children))
			fm, err2 := rpc.Parse(bytes.Clone(final))
			if err1 != nil || err2 != nil {
				b.Fatal(err1, err2)
			}
			return &supervisor.Status{Parts: []*rpc.Message{cm}, Final: fm}
		}
		b.Run(fmt.Sprintf("parse/%d", n), func(b *testing.B) {
			for b.Loop() {
				parse()
			}
		})
		b.Run(fmt.Sprintf("view/%d", n), func(b *testing.B) {
			st := parse()
			for b.Loop() {
				statusview.New(st)
			}
		})
		b.Run(fmt.Sprintf("table/%d", n), func(b *testing.B) {
			v := statusview.New(parse())
			for b.Loop() {
				if err := renderStatus(io.Discard, v, false, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("json/%d", n), func(b *testing.B) {
			v := statusview.New(parse())
			for b.Loop() {
				if err := writeRows(io.Discard, v, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("all/%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := renderStatus(io.Discard, statusview.New(parse()), false, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
