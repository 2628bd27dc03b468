// Package procmetrics reads process and host memory figures straight from
// /proc and the cgroup filesystem, with no subprocess.
//
// Everything is read through an [FS], a pair of roots (the proc mount and the
// cgroup mount), so the parsers are tested against fixture trees under
// testdata/ exactly as they run against the live system.
//
// Three kinds of reading are offered:
//
//   - [Sampler.Capture]: the process tree under a pid in one pass over /proc,
//     with each process's general figures and, optionally, its memory details
//     from smaps_rollup. Serialised with the original (async-container-supervisor
//     process monitor) field names.
//   - [FS.Resident] and [FS.Private]: cheap single-process readings for a hot
//     poll (statm, respectively smaps_rollup), and [FS.MemoryOf] for the full
//     memory details of one process; [FS.Watch] for the same statm and
//     smaps_rollup readings repeated on one process through files kept open
//     ([Watched.Resident], [Watched.Memory]).
//   - [FS.HostMemory]: total and free memory of the host, or of the memory
//     cgroup the caller runs in when that cgroup has a limit.
//
// Units are converted in one place (units.go): sizes are bytes, times are
// seconds, processor utilisation is a percentage of one core.
//
// A process that exits while it is being read is skipped by a capture and
// reported as [ErrNotFound] by the single-process readings.
package procmetrics
