//go:build !linux

package container

import "time"

// Subreaper is Linux-only; elsewhere NewSubreaper fails.
type Subreaper struct{}

// NewSubreaper returns ErrUnsupported.
func NewSubreaper(SubreaperOptions) (*Subreaper, error) { return nil, ErrUnsupported }

// RunID returns "".
func (s *Subreaper) RunID() string { return "" }

// Tracking returns "none".
func (s *Subreaper) Tracking() string { return "none" }

// CgroupBase returns "".
func (s *Subreaper) CgroupBase() string { return "" }

// Counts returns zeros.
func (s *Subreaper) Counts() (reaped, stopped int) { return 0, 0 }

// Close does nothing.
func (s *Subreaper) Close(time.Duration) {}

func (s *Subreaper) startChild(seq uint64, name string, th *spawnThread, shared bool, start func(int) (int, error)) error {
	_, err := start(-1)
	return err
}

func (s *Subreaper) reaped(int, uint64, bool) {}

func (s *Subreaper) startCommand(seq uint64, start func(int) (int, error)) error {
	_, err := start(-1)
	return err
}

func (s *Subreaper) forget(int) {}
