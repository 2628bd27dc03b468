package memtrim

import (
	"context"
	"runtime/debug"
	"time"
)

// Result says what one Trim gave back.
type Result struct {
	// Heap is the heap given back to the kernel, in bytes: what the heap
	// held from the kernel before less what it holds after.
	Heap int64
	// Mapped is the executable's pages dropped from the page tables, in
	// bytes (resident before the trim).
	Mapped int64
}

// Trim returns the free heap to the kernel (a garbage collection, then
// debug.FreeOSMemory's scavenge) and drops the executable's pages from
// this process's page tables. The error says why the executable's pages
// were kept (no /proc, an unknown mapping); the heap is returned anyway.
// Where the system has no such mappings (not Linux), only the heap is
// returned.
func Trim() (Result, error) {
	var r Result
	before := heapHeld()
	debug.FreeOSMemory()
	r.Heap = max(before-heapHeld(), 0)
	var err error
	r.Mapped, err = dropExecutable()
	return r, err
}

// Run trims once after first, then every every (0: only once), until ctx
// ends; report, if not nil, is told each trim's result.
func Run(ctx context.Context, first, every time.Duration, report func(Result, error)) {
	wait := first
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		r, err := Trim()
		if report != nil {
			report(r, err)
		}
		if every <= 0 {
			return
		}
		wait = every
	}
}
