package monitor

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"syscall"

	"github.com/vigild/vigil/procmetrics"
)

// pidError wraps procmetrics.ErrNotFound when the process is gone.
func pidError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("%w: %s: %w", procmetrics.ErrNotFound, path, err)
	}
	return fmt.Errorf("monitor: %s: %w", path, err)
}

// parseStatmResident returns the second field of statm (resident pages).
func parseStatmResident(b []byte) (uint64, error) {
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, fmt.Errorf("unexpected content %q", b)
	}
	n, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("unexpected content %q", b)
	}
	return n, nil
}

// figures are the sizes the memory monitor judges a process by.
type figures struct {
	shared  uint64 // Shared_Clean
	private uint64 // Private_Clean + Private_Dirty
}

// parseRollup reads the Shared_Clean, Private_Clean and Private_Dirty lines
// ("Name:   123 kB") of smaps_rollup. Empty content (a process without an
// address space) reads as zeros.
func parseRollup(b []byte) (figures, error) {
	var fg figures
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue // the header line: address range and [rollup]
		}
		var dst *uint64
		switch string(line[:colon]) {
		case "Shared_Clean":
			dst = &fg.shared
		case "Private_Clean", "Private_Dirty":
			dst = &fg.private
		default:
			continue
		}
		v, ok := bytes.CutSuffix(bytes.TrimSpace(line[colon+1:]), []byte(" kB"))
		if !ok {
			return figures{}, fmt.Errorf("unexpected line %q", line)
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			return figures{}, fmt.Errorf("unexpected line %q", line)
		}
		*dst += n << 10
	}
	return fg, nil
}
