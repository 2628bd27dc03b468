//go:build !linux

// Command logs measures the capture of children's output; it runs on Linux
// only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench/logs: Linux only")
	os.Exit(1)
}
