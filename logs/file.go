package logs

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
)

// fileGather is how many bytes of small batches the file sink gathers
// into one write.
const fileGather = 256 << 10

// fileSink writes one instance's stream to its rotated file, as the child
// wrote it (a line cut for length ends with a newline at the cut).
type fileSink struct {
	*pump
	file   *rotFile
	logger *slog.Logger
	buf    []byte
	failed bool
}

// fileName is the file of an instance's stream in dir.
func fileName(dir string, id Identity, s Stream) string {
	return filepath.Join(dir, fmt.Sprintf("%s.%d.%s.log", id.Service, id.Instance, s))
}

func newFileSink(path string, set Settings, queue int, logger *slog.Logger) *fileSink {
	s := &fileSink{file: &rotFile{path: path, logger: logger}, logger: logger}
	s.file.setLimits(set.MaxSize, set.Keep, set.Compress)
	s.pump = newPump("file "+path, queue, toFile, s.write, nil)
	return s
}

func (s *fileSink) write(batches []*batch) {
	from := 0
	for i, b := range batches {
		last := i == len(batches)-1
		if len(s.buf) == 0 && (last || len(b.data) >= fileGather/2) {
			s.flush(b.data, batches[i:i+1])
			from = i + 1
			continue
		}
		s.buf = append(s.buf, b.data...)
		if len(s.buf) >= fileGather || last {
			s.flush(s.buf, batches[from:i+1])
			s.buf = s.buf[:0]
			from = i + 1
		}
	}
}

func (s *fileSink) flush(p []byte, batches []*batch) {
	err := s.file.write(p)
	if err == nil {
		if s.failed {
			s.failed = false
			s.logger.Info("log file written again", "file", s.file.path)
		}
		return
	}
	// What the failure lost is not known line by line: the lines of
	// every batch of this write count as lost.
	for _, b := range batches {
		b.cap.dropped[toFile].Add(uint64(b.lines))
	}
	if !s.failed {
		s.failed = true
		s.logger.Warn("log file: lines lost", "file", s.file.path, "error", err)
	}
}

func (s *fileSink) close(ctx context.Context) error {
	err := s.pump.close(ctx)
	select {
	case <-s.pump.done:
		if cerr := s.file.close(ctx); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", s.file.path, cerr)
		}
	default: // still writing: the file stays open for that write
	}
	return err
}
