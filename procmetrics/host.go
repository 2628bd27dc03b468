package procmetrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/procfs"
)

// Sources of a HostMemory reading.
const (
	SourceMeminfo = "meminfo" // /proc/meminfo: MemTotal, MemAvailable
	SourceCgroup2 = "cgroup2" // memory.max, memory.current
	SourceCgroup1 = "cgroup1" // memory.limit_in_bytes, memory.usage_in_bytes
)

// HostMemory is the memory available to this process: the host's, or the
// memory cgroup's when that has a limit. Sizes are bytes.
type HostMemory struct {
	Total uint64 `json:"total_size"` // MemTotal, or the cgroup's limit
	Free  uint64 `json:"free_size"`  // MemAvailable, or the limit minus usage (0 if over)
	// Source says where the figures come from: SourceMeminfo, SourceCgroup2
	// or SourceCgroup1.
	Source string `json:"source"`
	// Cgroup is the directory of the limiting cgroup, empty for meminfo.
	Cgroup string `json:"cgroup,omitempty"`
}

// HostMemory returns the memory total and free for this process.
//
// Without a limiting cgroup, Total is MemTotal and Free is MemAvailable of
// /proc/meminfo (MemFree on kernels older than 3.14, which lack it).
//
// The memory cgroup is found through <proc>/self/cgroup: a cgroup v1 line
// naming the memory controller wins (hybrid hosts keep memory on v1), else
// the v2 line "0::/path". The cgroup directory is <cgroup>/memory/<path> (v1)
// or <cgroup>/<path> (v2); if it does not exist (a container whose cgroup
// mount is its own cgroup), the mount root itself is used. From that
// directory up to the mount root, every level with a limit is considered
// (a parent's limit bounds its children), and the one leaving the least free
// memory wins: Total is its limit, Free its limit minus its usage (0 when the
// usage exceeds the limit). A limit of "max" (v2), or one not below MemTotal
// (v1 writes 9223372036854771712 for "none"), is no limit. Usage includes the
// page cache, as the kernel counts it.
//
// A missing self/cgroup file or cgroup mount is not an error: meminfo is
// reported. Unreadable or malformed cgroup files are errors naming the file.
func (fs FS) HostMemory() (HostMemory, error) {
	if err := fs.check(); err != nil {
		return HostMemory{}, err
	}
	pfs, err := procfs.NewFS(fs.proc)
	if err != nil {
		return HostMemory{}, fmt.Errorf("procmetrics: %w", err)
	}
	mi, err := pfs.Meminfo()
	if err != nil {
		return HostMemory{}, fmt.Errorf("procmetrics: %s/meminfo: %w", fs.proc, err)
	}
	if mi.MemTotalBytes == nil {
		return HostMemory{}, fmt.Errorf("procmetrics: %s/meminfo: no MemTotal", fs.proc)
	}
	host := HostMemory{Total: *mi.MemTotalBytes, Source: SourceMeminfo}
	switch {
	case mi.MemAvailableBytes != nil:
		host.Free = *mi.MemAvailableBytes
	case mi.MemFreeBytes != nil:
		host.Free = *mi.MemFreeBytes
	default:
		return HostMemory{}, fmt.Errorf("procmetrics: %s/meminfo: no MemAvailable nor MemFree", fs.proc)
	}

	cg, found, err := fs.cgroupLimit(host.Total)
	if err != nil || !found {
		return host, err
	}
	return cg, nil
}

// cgroupLimit finds the limiting memory cgroup, as HostMemory describes.
func (fs FS) cgroupLimit(hostTotal uint64) (HostMemory, bool, error) {
	selfPath := fs.proc + "/self/cgroup"
	data, err := os.ReadFile(selfPath)
	if errors.Is(err, errNotExist) {
		return HostMemory{}, false, nil
	}
	if err != nil {
		return HostMemory{}, false, fmt.Errorf("procmetrics: %w", err)
	}
	var v1Path, v2Path string
	var hasV1, hasV2 bool
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return HostMemory{}, false, fmt.Errorf("procmetrics: %s line %d: %q is not id:controllers:path", selfPath, n, line)
		}
		if parts[0] == "0" && parts[1] == "" {
			v2Path, hasV2 = parts[2], true
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1Path, hasV1 = parts[2], true
			}
		}
	}
	switch {
	case hasV1:
		return fs.walkLimit(filepath.Join(fs.cgroup, "memory"), v1Path, hostTotal,
			"memory.limit_in_bytes", "memory.usage_in_bytes", SourceCgroup1)
	case hasV2:
		return fs.walkLimit(fs.cgroup, v2Path, hostTotal, "memory.max", "memory.current", SourceCgroup2)
	}
	return HostMemory{}, false, nil
}

// walkLimit looks for the limit leaving the least free memory from
// mount/rel up to mount.
func (fs FS) walkLimit(mount, rel string, hostTotal uint64, limitName, usageName, source string) (HostMemory, bool, error) {
	if _, err := os.Stat(mount); err != nil {
		return HostMemory{}, false, nil // controller not mounted here
	}
	dir := filepath.Join(mount, filepath.Clean("/"+rel))
	if _, err := os.Stat(dir); err != nil {
		dir = mount
	}
	var best HostMemory
	found := false
	for {
		limit, limited, err := readLimit(filepath.Join(dir, limitName), hostTotal)
		if err != nil {
			return HostMemory{}, false, err
		}
		if limited {
			usagePath := filepath.Join(dir, usageName)
			b, err := os.ReadFile(usagePath)
			if err != nil {
				return HostMemory{}, false, fmt.Errorf("procmetrics: %w", err)
			}
			usage, ok := parseUint(bytes.TrimSpace(b))
			if !ok {
				return HostMemory{}, false, fmt.Errorf("procmetrics: %s: %w: %q", usagePath, errFormat, bytes.TrimSpace(b))
			}
			free := uint64(0)
			if usage < limit {
				free = limit - usage
			}
			if !found || free < best.Free {
				best = HostMemory{Total: limit, Free: free, Source: source, Cgroup: dir}
				found = true
			}
		}
		if dir == mount {
			break
		}
		dir = filepath.Dir(dir)
		if len(dir) < len(mount) {
			break
		}
	}
	return best, found, nil
}

// readLimit reads a memory limit file: missing, "max", or not below
// hostTotal means unlimited.
func readLimit(path string, hostTotal uint64) (uint64, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, errNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("procmetrics: %w", err)
	}
	b = bytes.TrimSpace(b)
	if string(b) == "max" {
		return 0, false, nil
	}
	v, ok := parseUint(b)
	if !ok {
		return 0, false, fmt.Errorf("procmetrics: %s: %w: %q", path, errFormat, b)
	}
	if v >= hostTotal {
		return 0, false, nil
	}
	return v, true, nil
}

// errNotExist is fs.ErrNotExist, named apart from the FS receivers called fs.
var errNotExist = fs.ErrNotExist
