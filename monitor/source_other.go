//go:build !linux

package monitor

import (
	"errors"

	"github.com/vigild/vigil/procmetrics"
)

// errNoProc is returned where the memory monitor cannot read processes.
var errNoProc = errors.New("monitor: the memory monitor needs Linux's /proc")

// procSource reports that /proc is not available.
type procSource struct{}

func newProcSource(fs procmetrics.FS) *procSource { return &procSource{} }

func (s *procSource) HostMemory() (procmetrics.HostMemory, error) {
	return procmetrics.HostMemory{}, errNoProc
}
func (s *procSource) Resident(pid int) (uint64, error) { return 0, errNoProc }
func (s *procSource) Figures(pid int) (figures, error) { return figures{}, errNoProc }
func (s *procSource) Forget(pid int)                   {}
func (s *procSource) Close()                           {}
