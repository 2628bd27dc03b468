//go:build !linux

// Command memory-breach measures the memory monitor's reaction to a breach;
// it needs Linux (/proc and smaps_rollup).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "memory-breach: only Linux is supported (it reads /proc/self/smaps_rollup)")
	os.Exit(1)
}
