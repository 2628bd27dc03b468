//go:build !linux

package memtrim

// dropExecutable keeps the executable's pages: only Linux says which
// pages a mapping holds.
func dropExecutable() (int64, error) { return 0, nil }
