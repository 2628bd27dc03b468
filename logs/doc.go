// Package logs keeps what child processes write: it captures their stdout
// and stderr without ever blocking them, keeps the last lines of each
// instance in memory, and sends every line to the console, to rotated
// files and to the systemd journal.
//
// [Writer] is the bounded writer underneath: a Write that never blocks, one
// goroutine that writes, and a Close that gives up when its context ends.
//
// The package imports nothing of vigil.
package logs
