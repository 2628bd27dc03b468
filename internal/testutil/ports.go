package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// FreePorts returns the first of n consecutive TCP ports free on
// 127.0.0.1 when looked at. They are taken below the kernel's ephemeral
// range (net.ipv4.ip_local_port_range), from which every outgoing
// connection of a test running beside (an http probe, a scrape) takes its
// local port: a port from there may be taken between this look and the
// bind of the program under test, one from below it only by another
// listener.
func FreePorts(t testing.TB, n int) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && lo > 2048 {
			low = lo
		}
	}
	for range 200 {
		base := 1024 + rand.IntN(low-1024-n)
		if free(base, n) {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports below %d", n, low)
	return 0
}

// free reports whether ports base to base+n-1 can all be bound now.
func free(base, n int) bool {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for i := range n {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
		if err != nil {
			return false
		}
		held = append(held, l)
	}
	return true
}
