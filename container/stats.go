package container

import (
	"sync"
	"sync/atomic"
	"time"
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
	return Statistics{
		Service: name, Spawns: s.spawns, Restarts: s.restarts, Failures: s.failures,
		RestartRate: s.restartRate.perSecond(now), FailureRate: s.failureRate.perSecond(now),
		OutputDroppedLines: s.dropped.Load(),
	}
}

// statsRegistry holds serviceStats by name; a Controller shares one between
// its containers so counts survive a Reload.
type statsRegistry struct {
	mu sync.Mutex
	m  map[string]*serviceStats
}

func (r *statsRegistry) get(name string) *serviceStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]*serviceStats)
	}
	s := r.m[name]
	if s == nil {
		s = new(serviceStats)
		r.m[name] = s
	}
	return s
}
