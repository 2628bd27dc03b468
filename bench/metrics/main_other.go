//go:build !linux

// Command metrics measures the supervisor's /metrics with a real fleet; it
// needs Linux (vigil run's containers, the monitors' /proc).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench/metrics: only Linux is supported")
	os.Exit(1)
}
