//go:build !linux

package logs

import "os"

// growPipe returns the zero pace: the capacity of a pipe is not known here, so reads
// are never delayed.
func (h *Hub) growPipe(f *os.File) (pace readPace, grown int) { return readPace{}, 0 }

// pipeShare is nothing to keep where pipes are not grown.
type pipeShare struct{}

func (s *pipeShare) give(int) {}
