// Package procfs reads what the end-to-end benchmarks need of other
// processes from /proc (Linux): their stat fields, status lines, children
// and command lines.
package procfs
