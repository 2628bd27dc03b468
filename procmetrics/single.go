package procmetrics

import "fmt"

// Resident returns the resident size in bytes of pid, from /proc/PID/statm:
// one small read, cheap enough for a frequent poll of every worker. A zombie
// or kernel thread reads 0. A process that does not exist (or exits during
// the read) gives an error wrapping ErrNotFound.
func (fs FS) Resident(pid int) (uint64, error) {
	if err := fs.check(); err != nil {
		return 0, err
	}
	var arr [128]byte
	path := fs.pidPath(pid, "statm")
	b, err := readFile(path, arr[:0], len(arr))
	if err != nil {
		return 0, wrapPidErr(path, err)
	}
	if len(b) == 0 {
		return 0, fmt.Errorf("%w: %s is empty", ErrNotFound, path)
	}
	pages, err := parseStatmResident(b)
	if err != nil {
		return 0, fmt.Errorf("procmetrics: %s: %w", path, err)
	}
	return pagesToBytes(pages), nil
}

// Private returns the private size in bytes of pid (Private_Clean +
// Private_Dirty of /proc/PID/smaps_rollup): the memory its exit would free.
// It costs a walk of the process's page tables by the kernel, tens of
// microseconds for a small process, more for a large one. A process without
// an address space (zombie, kernel thread) reads 0. A process that does not
// exist gives an error wrapping ErrNotFound; one whose smaps_rollup may not
// be read, the permission error.
func (fs FS) Private(pid int) (uint64, error) {
	if err := fs.check(); err != nil {
		return 0, err
	}
	path := fs.pidPath(pid, "smaps_rollup")
	b, err := readFile(path, make([]byte, 0, 2048), maxRollup)
	if err != nil {
		return 0, wrapPidErr(path, err)
	}
	r, err := parseSmapsRollup(b)
	if err != nil {
		return 0, fmt.Errorf("procmetrics: %s: %w", path, err)
	}
	return r.privateClean + r.privateDirty, nil
}

// MemoryOf returns the full memory details of pid, as a capture with memory
// details gives them (smaps_rollup, the map count and the faults). A process
// without an address space gives a Memory of zero sizes with its faults. A
// process that does not exist gives an error wrapping ErrNotFound; one whose
// files may not be read, the permission error.
func (fs FS) MemoryOf(pid int) (Memory, error) {
	if err := fs.check(); err != nil {
		return Memory{}, err
	}
	buf := make([]byte, 0, 2048)
	path := fs.pidPath(pid, "stat")
	b, err := readFile(path, buf, maxStat)
	if err != nil {
		return Memory{}, wrapPidErr(path, err)
	}
	if len(b) == 0 {
		return Memory{}, fmt.Errorf("%w: %s is empty", ErrNotFound, path)
	}
	st, err := parseStat(b)
	if err != nil {
		return Memory{}, fmt.Errorf("procmetrics: %s: %w", path, err)
	}
	minflt, majflt := st.minflt, st.majflt

	path = fs.pidPath(pid, "smaps_rollup")
	b, err = readFile(path, buf, maxRollup)
	if err != nil {
		return Memory{}, wrapPidErr(path, err)
	}
	r, err := parseSmapsRollup(b)
	if err != nil {
		return Memory{}, fmt.Errorf("procmetrics: %s: %w", path, err)
	}
	var m Memory
	m.setRollup(r)
	m.MinorFaults, m.MajorFaults = minflt, majflt
	if len(b) > 0 {
		path = fs.pidPath(pid, "maps")
		m.MapCount, err = countLines(path, make([]byte, 16<<10))
		if err != nil {
			return Memory{}, wrapPidErr(path, err)
		}
	}
	return m, nil
}
