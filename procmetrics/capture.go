package procmetrics

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
)

// Process is one process's figures, serialised with the field names of the
// original's process monitor. Sizes are bytes, times seconds.
type Process struct {
	ProcessID       int `json:"process_id"`        // the pid
	ParentProcessID int `json:"parent_process_id"` // the parent's pid
	ProcessGroupID  int `json:"process_group_id"`  // the process group's id
	// ProcessorUtilization is the percentage of one core used since the
	// previous capture of the same process by the same Sampler (so it may
	// exceed 100 for a multi-threaded process). On a process's first capture
	// it is the average over the process's lifetime, as ps(1) reports.
	ProcessorUtilization float64 `json:"processor_utilization"`
	// TotalSize is Memory.ProportionalSize when memory details were read and
	// available, else ResidentSize.
	TotalSize    uint64 `json:"total_size"`
	VirtualSize  uint64 `json:"virtual_size"`  // bytes of address space (stat vsize)
	ResidentSize uint64 `json:"resident_size"` // bytes in RAM (stat rss)
	// ProcessorTime is user plus system time of all the process's threads
	// (not of its waited-for children).
	ProcessorTime float64 `json:"processor_time"`
	// ElapsedTime is the time since the process started.
	ElapsedTime float64 `json:"elapsed_time"`
	// Command is the command line, arguments joined by spaces and cut at
	// 4 KiB; for processes with no command line (kernel threads, zombies),
	// the kernel's command name (comm, at most 15 bytes).
	Command string `json:"command"`
	// Memory is nil unless memory details were asked for and could be read:
	// it stays nil for a process without an address space (kernel thread,
	// zombie) or whose smaps_rollup this process may not read (EACCES).
	Memory *Memory `json:"memory"`
}

// Memory is a process's memory details, from /proc/PID/smaps_rollup (sizes),
// /proc/PID/maps (the map count) and /proc/PID/stat (faults).
type Memory struct {
	MapCount             int    `json:"map_count"`              // mappings: lines of /proc/PID/maps
	ResidentSize         uint64 `json:"resident_size"`          // Rss, in bytes
	ProportionalSize     uint64 `json:"proportional_size"`      // Pss: Rss, shared pages divided among sharers
	SharedCleanSize      uint64 `json:"shared_clean_size"`      // Shared_Clean, in bytes
	SharedDirtySize      uint64 `json:"shared_dirty_size"`      // Shared_Dirty, in bytes
	PrivateCleanSize     uint64 `json:"private_clean_size"`     // Private_Clean, in bytes
	PrivateDirtySize     uint64 `json:"private_dirty_size"`     // Private_Dirty, in bytes
	ReferencedSize       uint64 `json:"referenced_size"`        // Referenced: recently accessed, bytes
	AnonymousSize        uint64 `json:"anonymous_size"`         // Anonymous: not file-backed, bytes
	SwapSize             uint64 `json:"swap_size"`              // Swap: swapped out, bytes
	ProportionalSwapSize uint64 `json:"proportional_swap_size"` // SwapPss: Swap, shared pages divided
	MinorFaults          uint64 `json:"minor_faults"`           // count since start, not of children (stat minflt)
	MajorFaults          uint64 `json:"major_faults"`           // count since start, not of children (stat majflt)
}

// PrivateSize is PrivateCleanSize + PrivateDirtySize: the memory that would
// be freed if the process exited.
func (m Memory) PrivateSize() uint64 { return m.PrivateCleanSize + m.PrivateDirtySize }

func (m *Memory) setRollup(r rollup) {
	m.ResidentSize = r.rss
	m.ProportionalSize = r.pss
	m.SharedCleanSize = r.sharedClean
	m.SharedDirtySize = r.sharedDirty
	m.PrivateCleanSize = r.privateClean
	m.PrivateDirtySize = r.privateDirty
	m.ReferencedSize = r.referenced
	m.AnonymousSize = r.anonymous
	m.SwapSize = r.swap
	m.ProportionalSwapSize = r.swapPss
}

// Size caps of the files read, as a guard against unexpected content.
const (
	maxStat    = 4 << 10
	maxCmdline = 4 << 10
	maxRollup  = 16 << 10
	maxStatm   = 512
)

// procKey identifies a process across pid reuse.
type procKey struct {
	pid   int
	start uint64
}

// cpuMark is what a Sampler remembers of a process between captures.
type cpuMark struct {
	ticks uint64  // utime+stime
	at    float64 // uptime of the capture, seconds
	util  float64 // utilisation reported then
}

// pidFiles are the files of one process a Sampler keeps open between
// captures (-1: not open).
type pidFiles struct {
	stat, cmdline int
	epoch         uint64 // the last capture that saw the process
}

var noFiles = pidFiles{stat: -1, cmdline: -1}

// entry is one process seen while scanning /proc.
type entry struct {
	pid     int
	files   pidFiles // kept files, copied from Sampler.files and back
	st      statFields
	comm    [64]byte // st.comm, cut at 64 bytes
	commLen int
	ok      bool  // stat read and parsed
	err     error // what went wrong reading the process, if anything
	inTree  bool
	proc    *Process
}

// DefaultMaxOpenFiles is the number of files a Sampler keeps open when
// MaxOpenFiles is 0.
const DefaultMaxOpenFiles = 2048

// maxWorkers bounds the goroutines of one capture.
const maxWorkers = 4

// Sampler captures process trees and remembers each process's processor
// ticks between captures, to report utilisation over the interval.
//
// The kernel's cost of generating /proc files dominates a capture, so a
// Sampler saves what it can around it:
//   - It keeps each process's stat and cmdline files open between captures
//     and re-reads them from their start (saving the open and close system
//     calls). A file kept open on a process that has since exited fails with
//     ESRCH and is reopened by path, so a reused pid is never confused with
//     its previous owner. Call Close to release them.
//   - It reads processes with as many goroutines as GOMAXPROCS (at most 4);
//     they end before the capture returns.
//
// The zero value with FS set is ready to use. A Sampler is safe for
// concurrent use; captures are serialised by a mutex.
type Sampler struct {
	// FS is the filesystem read. Set it before the first capture.
	FS FS
	// MaxOpenFiles bounds the files kept open between captures: 0 means
	// DefaultMaxOpenFiles, a negative value none (every read opens and
	// closes its file). Beyond the bound, files are opened for each read.
	MaxOpenFiles int

	mu      sync.Mutex
	prev    map[procKey]cpuMark
	next    map[procKey]cpuMark
	files   map[int]pidFiles
	nOpen   atomic.Int64
	epoch   uint64
	entries []entry
	index   map[int]int // pid -> entries index
	tree    []int       // entries indexes of the tree
	buf     []byte      // for /proc/uptime
	workers []*worker
}

// worker holds one reading goroutine's buffers.
type worker struct {
	buf, cmdBuf, lineBuf []byte
}

// Close releases the files the Sampler keeps open. The Sampler stays
// usable: a later capture opens files again.
func (s *Sampler) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for pid, f := range s.files {
		s.closeFiles(f)
		delete(s.files, pid)
	}
	return nil
}

// closeFiles closes the kept files of f. Safe from several goroutines.
func (s *Sampler) closeFiles(f pidFiles) {
	for _, fd := range []int{f.stat, f.cmdline} {
		if fd >= 0 {
			closeFD(fd)
			s.nOpen.Add(-1)
		}
	}
}

// readKept reads pid's file name into w.buf through the kept descriptor
// *fd, opening (and keeping, while under the bound) one if *fd is -1.
// Safe from several goroutines for distinct fd.
func (s *Sampler) readKept(w *worker, pid int, name string, fd *int, max int) error {
	path := s.FS.pidPath(pid, name)
	var err error
	if *fd >= 0 {
		w.buf, err = preadFD(*fd, path, w.buf, max)
		return err
	}
	limit := int64(s.MaxOpenFiles)
	if limit == 0 {
		limit = DefaultMaxOpenFiles
	}
	if !canKeepOpen || s.nOpen.Add(1) > limit {
		if canKeepOpen {
			s.nOpen.Add(-1)
		}
		w.buf, err = readFile(path, w.buf, max)
		return err
	}
	f, err := openFD(path)
	if err == nil {
		w.buf, err = preadFD(f, path, w.buf, max)
		if err != nil {
			closeFD(f)
		}
	}
	if err != nil {
		s.nOpen.Add(-1)
		return err
	}
	*fd = f
	return nil
}

// parallel calls fn(w, i) for every i in [0, n), from up to maxWorkers
// goroutines (GOMAXPROCS at most), each with its own worker, and returns
// when all calls have.
func (s *Sampler) parallel(n int, fn func(w *worker, i int)) {
	const chunk = 32
	nw := min(runtime.GOMAXPROCS(0), maxWorkers, (n+chunk-1)/chunk)
	nw = max(nw, 1)
	for len(s.workers) < nw {
		s.workers = append(s.workers, &worker{
			buf:     make([]byte, 0, 4096),
			cmdBuf:  make([]byte, 0, 1024),
			lineBuf: make([]byte, 32<<10),
		})
	}
	if nw == 1 {
		for i := range n {
			fn(s.workers[0], i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, w := range s.workers[:nw] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= n {
					return
				}
				for i := lo; i < min(lo+chunk, n); i++ {
					fn(w, i)
				}
			}
		}()
	}
	wg.Wait()
}

// Capture returns the process tree under ppid, ppid included, keyed by pid,
// from one pass over the proc root. With withMemory, each process's Memory
// is read too (one smaps_rollup and one maps read per process: much
// costlier, as the kernel walks each process's page tables).
//
// Edge cases:
//   - ppid absent from /proc: an error wrapping ErrNotFound.
//   - A process that exits while it is read (its files vanish, or a read
//     fails with ESRCH, or its stat reads empty) is left out; so may ppid
//     itself be if it exits after the scan.
//   - A process re-parented out of the tree (its parent exited) is no longer
//     part of it.
//   - A file with content that is not what the kernel writes is an error
//     naming the file.
func (s *Sampler) Capture(ppid int, withMemory bool) (map[int]*Process, error) {
	if err := s.FS.check(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		s.buf = make([]byte, 0, 256)
		s.index = make(map[int]int)
		s.prev = make(map[procKey]cpuMark)
		s.next = make(map[procKey]cpuMark)
		s.files = make(map[int]pidFiles)
	}
	fs := s.FS

	var err error
	s.buf, err = readFile(fs.proc+"/uptime", s.buf, 256)
	if err != nil {
		return nil, fmt.Errorf("procmetrics: %w", err)
	}
	uptime, err := parseUptime(s.buf)
	if err != nil {
		return nil, fmt.Errorf("procmetrics: %s/uptime: %w", fs.proc, err)
	}

	if err := s.scan(); err != nil {
		return nil, err
	}
	root, ok := s.index[ppid]
	if !ok {
		return nil, fmt.Errorf("%w: pid %d in %s", ErrNotFound, ppid, fs.proc)
	}
	s.markTree(root)

	s.parallel(len(s.tree), func(w *worker, k int) {
		e := &s.entries[s.tree[k]]
		e.proc, e.err = s.process(w, e, uptime, withMemory)
	})

	out := make(map[int]*Process, len(s.tree))
	clear(s.next)
	var firstErr error
	for _, i := range s.tree {
		e := &s.entries[i]
		s.keepFiles(e)
		if e.err != nil {
			if !errors.Is(e.err, ErrNotFound) && firstErr == nil {
				firstErr = e.err
			}
			continue
		}
		s.utilization(e, uptime)
		out[e.pid] = e.proc
	}
	s.prev, s.next = s.next, s.prev
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// scan reads the stat file of every process under the proc root into
// s.entries and s.index, and closes the kept files of processes gone.
func (s *Sampler) scan() error {
	dir, err := os.Open(s.FS.proc)
	if err != nil {
		return fmt.Errorf("procmetrics: %w", err)
	}
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return fmt.Errorf("procmetrics: %s: %w", s.FS.proc, err)
	}
	s.epoch++
	s.entries = s.entries[:0]
	for _, name := range names {
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		v, ok := parseUint([]byte(name))
		if !ok || v > 1<<31 {
			continue
		}
		f, kept := s.files[int(v)]
		if !kept {
			f = noFiles
		}
		s.entries = append(s.entries, entry{pid: int(v), files: f})
	}

	s.parallel(len(s.entries), func(w *worker, i int) { s.readStat(w, &s.entries[i]) })

	// Keep the processes read, in order; record their kept files.
	var firstErr error
	kept := s.entries[:0]
	for _, e := range s.entries {
		s.keepFiles(&e)
		if e.err != nil && firstErr == nil {
			firstErr = e.err
		}
		if e.ok {
			kept = append(kept, e)
		}
	}
	s.entries = kept
	for pid, f := range s.files {
		if f.epoch != s.epoch {
			s.closeFiles(f)
			delete(s.files, pid)
		}
	}
	if firstErr != nil {
		return firstErr
	}
	clear(s.index)
	for i := range s.entries {
		s.index[s.entries[i].pid] = i
	}
	return nil
}

// keepFiles records the kept files of e in s.files, marked as seen by this
// capture.
func (s *Sampler) keepFiles(e *entry) {
	if e.files.stat < 0 && e.files.cmdline < 0 {
		delete(s.files, e.pid)
		return
	}
	e.files.epoch = s.epoch
	s.files[e.pid] = e.files
}

// readStat reads and parses e's stat file, setting e.ok, or e.err for an
// error other than the process being gone.
func (s *Sampler) readStat(w *worker, e *entry) {
	kept := e.files.stat >= 0
	err := s.readKept(w, e.pid, "stat", &e.files.stat, maxStat)
	if kept && (err != nil || len(w.buf) == 0) {
		// The kept files belong to a process that exited; the pid may
		// name a new one.
		s.closeFiles(e.files)
		e.files = noFiles
		err = s.readKept(w, e.pid, "stat", &e.files.stat, maxStat)
	}
	if err != nil {
		if !gone(err) {
			e.err = fmt.Errorf("procmetrics: %w", err)
		}
		return
	}
	if len(w.buf) == 0 {
		return // reaped between open and read
	}
	st, err := parseStat(w.buf)
	if err != nil {
		e.err = fmt.Errorf("procmetrics: %s: %w", s.FS.pidPath(e.pid, "stat"), err)
		return
	}
	e.commLen = copy(e.comm[:], st.comm)
	st.comm = nil
	e.st = st
	e.ok = true
}

// markTree sets inTree on the entry at root and all its descendants, and
// lists them in s.tree.
func (s *Sampler) markTree(root int) {
	s.entries[root].inTree = true
	// Repeated passes until nothing changes: pids mostly grow from parent to
	// child, so this usually takes two passes; pid wrap-around costs more.
	for changed := true; changed; {
		changed = false
		for i := range s.entries {
			e := &s.entries[i]
			if e.inTree || e.pid == e.st.ppid {
				continue
			}
			if pi, ok := s.index[e.st.ppid]; ok && s.entries[pi].inTree {
				e.inTree = true
				changed = true
			}
		}
	}
	s.tree = s.tree[:0]
	for i := range s.entries {
		if s.entries[i].inTree {
			s.tree = append(s.tree, i)
		}
	}
}

// process builds the Process of entry e, reading its command line and, with
// withMemory, its memory details. Utilisation is left to utilization.
func (s *Sampler) process(w *worker, e *entry, uptime float64, withMemory bool) (*Process, error) {
	st := &e.st
	p := &Process{
		ProcessID:       e.pid,
		ParentProcessID: st.ppid,
		ProcessGroupID:  st.pgrp,
		VirtualSize:     st.vsize,
		ResidentSize:    pagesToBytes(st.rss),
	}
	p.TotalSize = p.ResidentSize

	if err := s.readKept(w, e.pid, "cmdline", &e.files.cmdline, maxCmdline); err != nil {
		return nil, wrapPidErr(s.FS.pidPath(e.pid, "cmdline"), err)
	}
	w.cmdBuf = appendCommand(w.cmdBuf[:0], w.buf)
	if len(w.cmdBuf) == 0 {
		p.Command = string(e.comm[:e.commLen])
	} else {
		p.Command = string(w.cmdBuf)
	}

	elapsed := uptime - ticksToSeconds(st.starttime)
	p.ProcessorTime = round2(ticksToSeconds(st.utime + st.stime))
	p.ElapsedTime = round2(max(elapsed, 0))

	if withMemory {
		m, buf, err := readMemory(s.FS, e.pid, w.buf, w.lineBuf)
		w.buf = buf
		if err != nil {
			return nil, err
		}
		if m != nil {
			m.MinorFaults, m.MajorFaults = st.minflt, st.majflt
			p.Memory = m
			p.TotalSize = m.ProportionalSize
		}
	}
	return p, nil
}

// utilization sets e.proc's processor utilisation from the mark the
// previous capture left, and leaves the mark for the next.
func (s *Sampler) utilization(e *entry, uptime float64) {
	st, p := &e.st, e.proc
	ticks := st.utime + st.stime
	key := procKey{e.pid, st.starttime}
	if m, ok := s.prev[key]; ok {
		if dt := uptime - m.at; dt > 0 && ticks >= m.ticks {
			p.ProcessorUtilization = round2(ticksToSeconds(ticks-m.ticks) / dt * 100)
		} else {
			// Same uptime reading (captures less than 10 ms apart): repeat
			// the last figure, and keep measuring from the older mark.
			p.ProcessorUtilization = m.util
			uptime, ticks = m.at, m.ticks
		}
	} else if elapsed := uptime - ticksToSeconds(st.starttime); elapsed > 0 {
		p.ProcessorUtilization = round2(ticksToSeconds(ticks) / elapsed * 100)
	}
	s.next[key] = cpuMark{ticks: ticks, at: uptime, util: p.ProcessorUtilization}
}

// readMemory reads pid's smaps_rollup (into buf, returned for reuse) and
// counts the lines of its maps (through lineBuf). Faults are left zero. It
// returns a nil Memory for a process without an address space (empty
// smaps_rollup) or whose files are not readable (EACCES, EPERM), and an
// error wrapping ErrNotFound for a process that is gone.
func readMemory(fs FS, pid int, buf, lineBuf []byte) (*Memory, []byte, error) {
	path := fs.pidPath(pid, "smaps_rollup")
	buf, err := readFile(path, buf, maxRollup)
	if err != nil {
		if denied(err) {
			return nil, buf, nil
		}
		return nil, buf, wrapPidErr(path, err)
	}
	if len(buf) == 0 {
		return nil, buf, nil
	}
	r, err := parseSmapsRollup(buf)
	if err != nil {
		return nil, buf, fmt.Errorf("procmetrics: %s: %w", path, err)
	}
	m := &Memory{}
	m.setRollup(r)
	path = fs.pidPath(pid, "maps")
	m.MapCount, err = countLines(path, lineBuf)
	if err != nil {
		if denied(err) {
			return nil, buf, nil
		}
		return nil, buf, wrapPidErr(path, err)
	}
	return m, buf, nil
}

func denied(err error) bool {
	return errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)
}
