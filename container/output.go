package container

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/vigild/vigil/logs"
)

// outputCloseTimeout bounds how long the output may take to write what is
// queued when the container or controller is done: a stuck output (a FIFO
// nobody reads) must not hold up the exit.
const outputCloseTimeout = 500 * time.Millisecond

// newHub returns the hub that captures the children's output when none is
// given: lines to w (nil: os.Stdout) prefixed "service.instance | ", kept
// in rings for Logs, with no files and no journal.
func newHub(w io.Writer, queue int, logger *slog.Logger) *logs.Hub {
	if w == nil {
		w = os.Stdout
	}
	set := logs.DefaultSettings()
	set.Console, set.Journal, set.Format = true, false, logs.FormatText
	return logs.New(logs.Options{Settings: set, Console: w, SinkQueue: queue, Logger: logger})
}

// closeHub stops the hub's destinations, giving up after
// outputCloseTimeout.
func closeHub(h *logs.Hub, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), outputCloseTimeout)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		logger.Warn("children's output abandoned: the output is not being read", "error", err)
	}
}

// endCapture lets p's capture read what its pipes still hold, for a
// short grace after p was reaped (a grandchild that escaped the process
// group may hold them open), then ends it and counts what was dropped.
func (c *Container) endCapture(p *proc) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), outputGrace)
	defer cancel()
	_ = p.capture.Wait(ctx)
	p.inst.svc.stats.dropped.Add(p.capture.Stats().Dropped())
}
