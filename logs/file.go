package logs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"time"
)

// File writing.
const (
	// fileGather: the files' writer writes at most this often, each file's
	// lines of that time in one write(2), unless its queue is a quarter
	// full (a burst), when it writes at once: a hundred children writing
	// a steady trickle cost a few hundred writes a second, not one per
	// read. Files are not read live (a follower reads the rings): a line
	// reaches its file at most this long after it was read, and every
	// line queued reaches it at Close. (A second was tried: it halved the
	// writes of a hundred chatty children, but the CPU moved within the
	// noise, and on a loaded machine 2 runs of bench/logs in 14 dropped
	// lines, against 1 in 19 at 200 ms.)
	fileGather = 200 * time.Millisecond
	// fileQueues: the files share one queue of this many times
	// Options.SinkQueue, so that every file of a busy host gets room
	// through a stall of the disk or of this process.
	fileQueues = 4
)

// fileWriter writes every file of a hub from one goroutine: a pump whose
// batches it sorts by file, each file's lines gathered into one write
// (writev(2) of the batches as they are: no copy).
// A slow disk holds up the files only, and what they cannot take is
// dropped and counted.
type fileWriter struct {
	*pump
	files   map[string]*fileSink // by path; only the hub (under its lock) adds
	touched []*fileSink          // the files of a write (the writer's goroutine only)
}

// fileSink is one instance's stream's file, as the child wrote it (a
// line cut for length ends with a newline at the cut).
type fileSink struct {
	w       *fileWriter
	file    *rotFile
	logger  *slog.Logger
	batches []*batch // the batches of this write (the writer's goroutine only)
	bufs    [][]byte // their data
	failed  bool
}

// fileName is the file of an instance's stream in dir.
func fileName(dir string, id Identity, s Stream) string {
	return filepath.Join(dir, fmt.Sprintf("%s.%d.%s.log", id.Service, id.Instance, s))
}

func newFileWriter(queue int) *fileWriter {
	w := &fileWriter{files: make(map[string]*fileSink)}
	w.pump = newPump("files", queue, toFile, w.write, nil)
	w.pump.gatherBelow, w.pump.gather = math.MaxInt, fileGather
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
	touched := w.touched[:0]
	for _, b := range batches {
		s := b.cap.fileSinks[b.stream-1]
		if len(s.batches) == 0 {
			touched = append(touched, s)
		}
		s.batches = append(s.batches, b)
	}
	for _, s := range touched {
		s.flush()
	}
	clear(touched)
	w.touched = touched
}

// flush writes the batches gathered and lets them go.
func (s *fileSink) flush() {
	for _, b := range s.batches {
		s.bufs = append(s.bufs, b.data)
	}
	err := s.file.write(s.bufs)
	clear(s.bufs)
	s.bufs = s.bufs[:0]
	if err == nil {
		if s.failed {
			s.failed = false
			s.logger.Info("log file written again", "file", s.file.path)
		}
	} else {
		// What the failure lost is not known line by line: every line of
		// the write counts as lost.
		for _, b := range s.batches {
			b.cap.dropped[toFile].Add(uint64(b.lines))
		}
		if !s.failed {
			s.failed = true
			s.logger.Warn("log file: lines lost", "file", s.file.path, "error", err)
		}
	}
	clear(s.batches)
	s.batches = s.batches[:0]
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
