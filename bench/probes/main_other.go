//go:build !linux

// Command probes measures the probe scheduler at 1,000 probes; it needs
// Linux (/proc and getrusage).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "probes: only Linux is supported (it reads /proc/self)")
	os.Exit(1)
}
