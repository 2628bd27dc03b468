//go:build !linux

// Command controller measures `vigil run` end to end; it needs Linux
// (vigil's containers, /proc, CLOCK_MONOTONIC stamps through a FIFO).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench/controller: only Linux is supported (vigil run's containers and /proc)")
	os.Exit(1)
}
