package main

import (
	"time"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/internal/config"
	"github.com/vigild/vigil/probe"
)

// Probe defaults: a readiness probe is checked every second (a start
// waits on it), a health probe every 10 s (Kubernetes' period).
const (
	readinessProbeInterval = time.Second
	healthProbeInterval    = 10 * time.Second
)

// probeSpec turns a configured probe into package probe's, run in dir; nil
// for none.
func probeSpec(p *config.Probe, interval time.Duration, dir string) *probe.Spec {
	if p == nil {
		return nil
	}
	s := &probe.Spec{
		Interval: p.Interval.D(), Timeout: p.Timeout.D(), InitialDelay: p.InitialDelay.D(),
		FailureThreshold: p.FailureThreshold, SuccessThreshold: p.SuccessThreshold,
	}
	if s.Interval == 0 {
		s.Interval = interval
	}
	switch {
	case p.HTTP != "":
		s.HTTP = &probe.HTTP{URL: p.HTTP}
	case p.TCP != "":
		s.TCP = &probe.TCP{Address: p.TCP}
	case len(p.Exec) > 0:
		s.Exec = &probe.Exec{Argv: p.Exec, Dir: dir}
	}
	return s
}

// setProbes gives spec the service's readiness and health probes.
func setProbes(spec *container.Spec, s config.Service) {
	if s.ReadinessProbe != nil {
		spec.Readiness = container.ReadyProbe
		spec.ReadinessProbe = probeSpec(s.ReadinessProbe, readinessProbeInterval, s.Dir)
	}
	spec.HealthProbe = probeSpec(s.HealthProbe, healthProbeInterval, s.Dir)
}
