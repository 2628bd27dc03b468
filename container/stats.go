package container

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// RateWindow is the window over which Statistics rates are computed.
const RateWindow = 60 * time.Second

// Statistics counts what happened to one service's children.
type Statistics struct {
	// Service is the service's name.
	Service string `json:"service"`
	// Spawns counts processes started (including restarts and replacements).
	Spawns uint64 `json:"spawns"`
	// Restarts counts processes started after an instance's first: restarts
	// after an exit and replacements by RestartChildren.
	Restarts uint64 `json:"restarts"`
	// Failures counts processes that exited unsuccessfully (non-zero code
	// or a signal, including kills after a failed clock) and spawns that
	// failed.
	Failures uint64 `json:"failures"`
	// RestartRate is restarts per second over the last RateWindow.
	RestartRate float64 `json:"restart_rate"`
	// FailureRate is failures per second over the last RateWindow.
	FailureRate float64 `json:"failure_rate"`
	// OutputDroppedLines counts output lines dropped because the output
	// buffer was full.
	OutputDroppedLines uint64 `json:"output_dropped_lines"`
	// Exits count how the service's processes ended, by instance and
	// reason, sorted by instance, reason, code and signal.
	Exits []ExitCount `json:"exits,omitempty"`
	// ReadyLatency is how long processes took from their start to their
	// first ready, in seconds.
	ReadyLatency Histogram `json:"ready_latency"`
	// ReadyAt is when each instance's latest process first became ready,
	// by instance (a process started after it has not been ready yet).
	ReadyAt map[int]time.Time `json:"ready_at,omitempty"`
}

// Reasons of an ExitCount.
const (
	// ExitCode: the process exited by itself; ExitCount.Code says how.
	ExitCode = "exit"
	// ExitSignal: a signal that vigil did not send killed it;
	// ExitCount.Signal names it.
	ExitSignal = "signal"
	// ExitOOM: SIGKILL that vigil did not send, while the kernel's
	// out-of-memory killer killed a process (its oom_kill count in
	// /proc/vmstat rose).
	ExitOOM = "oom"
	// ExitStartupTimeout and ExitHealthCheckTimeout: killed by the
	// container when its clock ran out.
	ExitStartupTimeout     = "startup_timeout"
	ExitHealthCheckTimeout = "health_check_timeout"
	// ExitStopped: it was being stopped by vigil (a stop, a restart, a
	// reload, a scale down), however it ended.
	ExitStopped = "stopped"
	// ExitSpawnFailed: the process could not be started.
	ExitSpawnFailed = "spawn_failed"
)

// ExitCount counts the ends of one instance's processes for one reason.
type ExitCount struct {
	// Instance is the instance the processes belonged to.
	Instance int `json:"instance"`
	// Reason is ExitCode, ExitSignal, ExitOOM, ExitStartupTimeout,
	// ExitHealthCheckTimeout, ExitStopped or ExitSpawnFailed.
	Reason string `json:"reason"`
	// Code is the exit code for ExitCode, else -1.
	Code int `json:"code"`
	// Signal is the signal's name ("SIGSEGV") for ExitSignal and ExitOOM,
	// else "".
	Signal string `json:"signal,omitempty"`
	// Count is how many ended so.
	Count uint64 `json:"count"`
}

// ReadyLatencyBounds are the upper bounds, in seconds, of the buckets of
// Statistics.ReadyLatency.
var ReadyLatencyBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// Histogram is a cumulative histogram, as Prometheus has them.
type Histogram struct {
	// Bounds are the buckets' upper bounds, ascending (+Inf is implied).
	Bounds []float64 `json:"bounds"`
	// Counts are the values at most each bound: cumulative.
	Counts []uint64 `json:"counts"`
	// Count is the number of values, +Inf's bucket.
	Count uint64 `json:"count"`
	// Sum is their sum.
	Sum float64 `json:"sum"`
}

// rate counts events in one-second buckets over RateWindow.
type rate struct {
	buckets [60]uint32
	stamp   [60]int64 // the unix second each bucket counts
}

func (r *rate) add(now time.Time) {
	sec := now.Unix()
	i := int(sec % 60)
	if r.stamp[i] != sec {
		r.stamp[i], r.buckets[i] = sec, 0
	}
	r.buckets[i]++
}

func (r *rate) perSecond(now time.Time) float64 {
	sec := now.Unix()
	var n uint32
	for i := range r.buckets {
		if sec-r.stamp[i] < 60 && r.stamp[i] <= sec {
			n += r.buckets[i]
		}
	}
	return float64(n) / RateWindow.Seconds()
}

// serviceStats is the live, shared record of one service.
type serviceStats struct {
	mu                         sync.Mutex
	spawns, restarts, failures uint64
	restartRate, failureRate   rate
	dropped                    atomic.Uint64
	exits                      map[exitKey]uint64
	readyCounts                []uint64 // per bucket, +Inf last; not cumulative
	readyCount                 uint64
	readySum                   float64
	readyAt                    map[int]time.Time
	oom                        *oomWatch
}

// exitKey is an ExitCount's key.
type exitKey struct {
	instance int
	reason   string
	code     int
	signal   string
}

// exited counts the end of a process of an instance: stopping, it was
// being stopped by vigil; killed, why the container killed it ("" if it
// did not).
func (s *serviceStats) exited(instance int, stopping bool, killed string, st ExitStatus) {
	k := exitKey{instance: instance, code: -1}
	switch {
	case stopping:
		k.reason = ExitStopped
	case killed != "":
		k.reason = strings.ReplaceAll(killed, " ", "_")
	case st.Signal == syscall.SIGKILL && s.oom.claim():
		k.reason, k.signal = ExitOOM, signalName(st.Signal)
	case st.Signal != 0:
		k.reason, k.signal = ExitSignal, signalName(st.Signal)
	default:
		k.reason, k.code = ExitCode, st.Code
	}
	s.countExit(k)
}

// spawnFailed counts a process of an instance that could not be started.
func (s *serviceStats) spawnFailed(instance int) {
	s.countExit(exitKey{instance: instance, reason: ExitSpawnFailed, code: -1})
}

func (s *serviceStats) countExit(k exitKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exits == nil {
		s.exits = make(map[exitKey]uint64)
	}
	s.exits[k]++
}

// ready records the first ready of an instance's process, started at
// started.
func (s *serviceStats) ready(instance int, started, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readyCounts == nil {
		s.readyCounts = make([]uint64, len(ReadyLatencyBounds)+1)
		s.readyAt = make(map[int]time.Time)
	}
	d := max(now.Sub(started).Seconds(), 0)
	i, _ := slices.BinarySearch(ReadyLatencyBounds, d) // the first bound >= d
	s.readyCounts[i]++
	s.readyCount++
	s.readySum += d
	s.readyAt[instance] = now
}

// signalName is "SIGSEGV", or the signal's number when it has no name.
func signalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return "SIG" + strconv.Itoa(int(sig))
}

func (s *serviceStats) spawn(now time.Time, restart bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spawns++
	if restart {
		s.restarts++
		s.restartRate.add(now)
	}
}

func (s *serviceStats) failure(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures++
	s.failureRate.add(now)
}

func (s *serviceStats) snapshot(name string, now time.Time) Statistics {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Statistics{
		Service: name, Spawns: s.spawns, Restarts: s.restarts, Failures: s.failures,
		RestartRate: s.restartRate.perSecond(now), FailureRate: s.failureRate.perSecond(now),
		OutputDroppedLines: s.dropped.Load(),
		ReadyLatency:       Histogram{Bounds: ReadyLatencyBounds, Counts: make([]uint64, len(ReadyLatencyBounds)), Count: s.readyCount, Sum: s.readySum},
	}
	var n uint64
	for i := range ReadyLatencyBounds {
		if s.readyCounts != nil {
			n += s.readyCounts[i]
		}
		st.ReadyLatency.Counts[i] = n
	}
	if len(s.readyAt) > 0 {
		st.ReadyAt = make(map[int]time.Time, len(s.readyAt))
		for i, t := range s.readyAt {
			st.ReadyAt[i] = t
		}
	}
	if len(s.exits) > 0 {
		st.Exits = make([]ExitCount, 0, len(s.exits))
		for k, c := range s.exits {
			st.Exits = append(st.Exits, ExitCount{Instance: k.instance, Reason: k.reason, Code: k.code, Signal: k.signal, Count: c})
		}
		slices.SortFunc(st.Exits, func(a, b ExitCount) int {
			switch {
			case a.Instance != b.Instance:
				return a.Instance - b.Instance
			case a.Reason != b.Reason:
				return strings.Compare(a.Reason, b.Reason)
			case a.Code != b.Code:
				return a.Code - b.Code
			}
			return strings.Compare(a.Signal, b.Signal)
		})
	}
	return st
}

// statsRegistry holds serviceStats by name; a Controller shares one between
// its containers so counts survive a Reload.
type statsRegistry struct {
	mu  sync.Mutex
	m   map[string]*serviceStats
	oom *oomWatch
}

func (r *statsRegistry) get(name string) *serviceStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]*serviceStats)
		r.oom = newOOMWatch(readOOMKills)
	}
	s := r.m[name]
	if s == nil {
		s = &serviceStats{oom: r.oom}
		r.m[name] = s
	}
	return s
}

// oomWatch tells a SIGKILL of the kernel's out-of-memory killer from
// another: each kill it counted (in /proc/vmstat) since the watch began
// explains one SIGKILL that vigil did not send. A kill -9 by someone else
// while the killer struck another process of the host is taken for it.
type oomWatch struct {
	mu      sync.Mutex
	read    func() (uint64, bool)
	seen    uint64 // the count at the last reading
	ok      bool   // the count can be read
	pending uint64 // kills not yet matched to an exit
}

func newOOMWatch(read func() (uint64, bool)) *oomWatch {
	w := &oomWatch{read: read}
	w.seen, w.ok = read()
	return w
}

// claim reports whether a SIGKILL that vigil did not send is explained by
// a kill of the out-of-memory killer not yet claimed.
func (w *oomWatch) claim() bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ok {
		return false
	}
	if n, ok := w.read(); ok && n > w.seen {
		w.pending += n - w.seen
		w.seen = n
	}
	if w.pending == 0 {
		return false
	}
	w.pending--
	return true
}

// readOOMKills reads the oom_kill count of /proc/vmstat (Linux 4.13 on).
// It reads the file in one call into a pooled buffer, without the poller:
// it is read on every SIGKILL that vigil did not send.
func readOOMKills() (uint64, bool) {
	bp := vmstatBuf.Get().(*[]byte)
	defer vmstatBuf.Put(bp)
	b, err := readSmall("/proc/vmstat", *bp)
	if err != nil {
		return 0, false
	}
	_, rest, ok := bytes.Cut(b, []byte("\noom_kill "))
	if !ok {
		return 0, false
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	n, err := strconv.ParseUint(string(line), 10, 64)
	return n, err == nil
}

var vmstatBuf = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// readSmall reads the file at path into buf (a /proc file of a few KiB is
// read whole in one call) and returns what it read.
func readSmall(path string, buf []byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}
