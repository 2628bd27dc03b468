//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// floor measures the same HTTP round trips without package probe: one
// kept-alive connection per listener, a fixed request written and one read
// of the answer (no parsing, no timeouts, no scheduler), a goroutine per
// round trip, in batches every step (each with the connections whose turn
// it is), for the window. What is left is the kernel's and Go runtime's
// cost of the round trips: what no prober in Go beats on this machine.
func floor(ctx context.Context, addrs []string, o options, serverPIDs []int) error {
	conns := make([]net.Conn, len(addrs))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var d net.Dialer
	for i, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", a)
		if err != nil {
			return err
		}
		conns[i] = c
	}
	req := []byte("GET /healthz HTTP/1.1\r\nHost: probe\r\nUser-Agent: floor\r\n\r\n")
	bufs := make([][]byte, len(conns))
	for i := range bufs {
		bufs[i] = make([]byte, 4<<10)
	}
	var mu sync.Mutex
	var firstErr error
	trip := func(i int) {
		_, err := conns[i].Write(req)
		if err == nil {
			_, err = conns[i].Read(bufs[i])
		}
		if err != nil && err != io.EOF {
			mu.Lock()
			firstErr = err
			mu.Unlock()
		}
	}
	step := o.interval
	if o.spread {
		step = o.coalesce
	}
	perStep := max(1, int(int64(len(conns))*int64(step)/int64(o.interval)))
	batch := func(next int) int {
		var wg sync.WaitGroup
		for range perStep {
			i := next % len(conns)
			next++
			wg.Go(func() { trip(i) })
		}
		wg.Wait()
		return next
	}
	next := 0
	for range len(conns)/perStep + 1 { // warm-up: every connection once
		next = batch(next)
	}
	before, err := takeSelf(serverPIDs)
	if err != nil {
		return err
	}
	tick := time.NewTicker(step)
	defer tick.Stop()
	trips := 0
	for end := before.at.Add(o.duration); time.Now().Before(end); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		next = batch(next)
		trips += perStep
	}
	after, err := takeSelf(serverPIDs)
	if err != nil {
		return err
	}
	if firstErr != nil {
		return fmt.Errorf("floor: %w", firstErr)
	}
	window := after.at.Sub(before.at)
	cpu := after.cpu - before.cpu
	fmt.Printf("floor (no package probe: raw write and read on kept-alive connections, a goroutine each, %d per batch every %v): %d round trips, CPU %v = %.2f%% of one core, %.1f µs per round trip, threads %d\n",
		perStep, step, trips, cpu.Round(time.Millisecond), 100*cpu.Seconds()/window.Seconds(),
		float64(cpu.Microseconds())/float64(trips), after.threads)
	return nil
}
