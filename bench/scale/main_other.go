//go:build !linux

// Command scale measures vigil at scale; it needs Linux (vigil's
// containers, /proc, CLOCK_MONOTONIC stamps through a FIFO).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench/scale: only Linux is supported (vigil run's containers and /proc)")
	os.Exit(1)
}
