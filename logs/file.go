package logs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"
)

// File writing.
const (
	// fileGatherBelow and fileGather: after a write of less than
	// fileGatherBelow bytes in all, the files' writer waits fileGather
	// before the next, so that slow children's lines go to their files in
	// a few writes rather than one per read. Files are not read live (a
	// follower reads the rings), so the wait costs nothing to see.
	fileGatherBelow = 64 << 10
	fileGather      = 100 * time.Millisecond
	// fileQueues: the files share one queue of this many times
	// Options.SinkQueue, so that every file of a busy host gets room
	// through a stall of the disk or of this process.
	fileQueues = 4
)

// fileWriter writes every file of a hub from one goroutine: a pump whose
// batches it sorts by file, each file's lines gathered into one write.
// A slow disk holds up the files only, and what they cannot take is
// dropped and counted.
type fileWriter struct {
	*pump
	files map[string]*fileSink // by path; only the hub (under its lock) adds
}

// fileSink is one instance's stream's file, as the child wrote it (a
// line cut for length ends with a newline at the cut).
type fileSink struct {
	w       *fileWriter
	file    *rotFile
	logger  *slog.Logger
	buf     []byte   // the lines of this write (the writer's goroutine only)
	batches []*batch // their batches, to count them if the write fails
	failed  bool
}

// fileName is the file of an instance's stream in dir.
func fileName(dir string, id Identity, s Stream) string {
	return filepath.Join(dir, fmt.Sprintf("%s.%d.%s.log", id.Service, id.Instance, s))
}

func newFileWriter(queue int) *fileWriter {
	w := &fileWriter{files: make(map[string]*fileSink)}
	w.pump = newPump("files", queue, toFile, w.write, nil)
	w.pump.gatherBelow, w.pump.gather = fileGatherBelow, fileGather
	return w
}

// sink returns the file at path, made with set's limits, or the one there
// is with its limits set to set's (under the hub's lock).
func (w *fileWriter) sink(path string, set Settings, logger *slog.Logger) *fileSink {
	s := w.files[path]
	if s == nil {
		s = &fileSink{w: w, file: &rotFile{path: path, logger: logger}, logger: logger}
		w.files[path] = s
	}
	s.file.setLimits(set.MaxSize, set.Keep, set.Compress)
	return s
}

func (s *fileSink) deliver(b *batch) bool { return s.w.deliver(b) }

// write sorts the batches by file and writes each file's lines at once.
func (w *fileWriter) write(batches []*batch) {
	var touched []*fileSink
	for _, b := range batches {
		s := b.cap.fileSinks[b.stream-1]
		if len(s.batches) == 0 {
			touched = append(touched, s)
		}
		s.batches = append(s.batches, b)
	}
	for _, s := range touched {
		p := s.batches[0].data
		if len(s.batches) > 1 {
			s.buf = s.buf[:0]
			for _, b := range s.batches {
				s.buf = append(s.buf, b.data...)
			}
			p = s.buf
		}
		s.flush(p)
		clear(s.batches)
		s.batches = s.batches[:0]
		if cap(s.buf) > 4*fileGatherBelow {
			s.buf = nil // a burst's buffer goes
		}
	}
}

func (s *fileSink) flush(p []byte) {
	err := s.file.write(p)
	if err == nil {
		if s.failed {
			s.failed = false
			s.logger.Info("log file written again", "file", s.file.path)
		}
		return
	}
	// What the failure lost is not known line by line: every line of the
	// write counts as lost.
	for _, b := range s.batches {
		b.cap.dropped[toFile].Add(uint64(b.lines))
	}
	if !s.failed {
		s.failed = true
		s.logger.Warn("log file: lines lost", "file", s.file.path, "error", err)
	}
}

// close writes what is queued, within ctx, and closes the files (those
// still being written to when ctx ends stay open for that write).
func (w *fileWriter) close(ctx context.Context, files []*fileSink) error {
	err := w.pump.close(ctx)
	select {
	case <-w.pump.done:
	default:
		return err
	}
	errs := []error{err}
	for _, s := range files {
		if cerr := s.file.close(ctx); cerr != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", s.file.path, cerr))
		}
	}
	return errors.Join(errs...)
}
