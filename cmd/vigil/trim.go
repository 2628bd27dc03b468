package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/vigild/vigil/internal/memtrim"
)

// A daemon of vigil's (vigil run, vigil supervise) gives back what its
// start-up left it holding (freed heap, the binary's pages it no longer
// runs) trimAfter after it is up, and again every trimEvery, so that what
// a burst (a reload, a storm of restarts, a large status reply) touched
// does not stay resident for good. A trim is a garbage collection and one
// madvise per mapping of the binary.
const (
	trimAfter = 2 * time.Second
	trimEvery = time.Minute
)

// startTrim trims in a goroutine of wg's until ctx ends.
func startTrim(ctx context.Context, wg *sync.WaitGroup, logger *slog.Logger) {
	wg.Go(func() {
		memtrim.Run(ctx, trimAfter, trimEvery, func(r memtrim.Result, err error) {
			logger.Debug("memory trimmed", "heap_returned", r.Heap, "binary_unmapped", r.Mapped, "binary_kept_because", err)
		})
	})
}
