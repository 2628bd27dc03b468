package rpc

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// statusLike is a JSON array of n entries shaped as the supervisor's status
// lists its connections (about 200 bytes each, the state's keys sorted as
// encoding/json writes a map's).
func statusLike(n int) []byte {
	var sb strings.Builder
	sb.WriteByte('[')
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		id := fmt.Sprintf("%08x-1111-4222-8333-444455556666", i)
		fmt.Fprintf(&sb, `{"connection_id":%q,"process_id":%d,"state":{"connection_id":%q,"instance":%d,"name":"idle","process_id":%d,"verified":true}}`, id, 1000+i, id, i, 1000+i)
	}
	sb.WriteByte(']')
	return []byte(sb.String())
}

// BenchmarkLongReply measures a call whose final reply is one long line
// (a status reply with 1,000 and 10,000 connections) over a real Unix
// socket, as an operator's client makes it: the caller reads, validates
// and indexes the reply, and lists its connections (GetArray).
func BenchmarkLongReply(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			list := statusLike(n)
			x, y := socketPair(b)
			ctx, cancel := context.WithCancel(context.Background())
			server := NewConn(x, Options{Accepted: true, Handlers: Handlers{
				"status": func(ctx context.Context, call *Call) error { return call.FinishShared("connections", list) },
			}})
			client := NewConn(y, Options{})
			done := make(chan struct{}, 2)
			go func() { _ = server.Run(ctx); done <- struct{}{} }()
			go func() { _ = client.Run(ctx); done <- struct{}{} }()
			defer func() { cancel(); <-done; <-done }()
			b.SetBytes(int64(len(list)))
			b.ReportAllocs()
			for b.Loop() {
				reply, err := client.Call(ctx, "status", nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				if elems, _ := reply.GetArray("connections"); len(elems) != n {
					b.Fatalf("%d connections listed, want %d", len(elems), n)
				}
			}
		})
	}
}

// BenchmarkParseStatus measures the client's own work on a status reply
// with 10,000 connections, without the socket: Parse, then GetArray.
func BenchmarkParseStatus(b *testing.B) {
	list := statusLike(10000)
	line := append(append([]byte(`{"id":2,"finished":true,"connections":`), list...), '}')
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := Parse(line)
		if err != nil {
			b.Fatal(err)
		}
		if elems, _ := m.GetArray("connections"); len(elems) != 10000 {
			b.Fatalf("%d connections listed", len(elems))
		}
	}
}
