//go:build !linux

package main

// isTerminal reports false off Linux: no colour, no redrawing in place.
func isTerminal(fd uintptr) bool { return false }
