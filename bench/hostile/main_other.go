//go:build !linux

// Command hostile measures the supervisor under hostile clients; it needs
// Linux (peer credentials, /proc).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "hostile: only Linux is supported")
	os.Exit(1)
}
