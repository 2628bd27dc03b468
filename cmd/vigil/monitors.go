package main

import (
	"log/slog"

	"github.com/vigild/vigil/internal/config"
	"github.com/vigild/vigil/monitor"
	"github.com/vigild/vigil/supervisor"
)

// buildMonitors returns the monitors that [supervisor.monitors] turns on:
// a table present turns its monitor on.
func buildMonitors(cfg *config.Config, logger *slog.Logger) ([]supervisor.Monitor, error) {
	var monitors []supervisor.Monitor
	if m := cfg.Supervisor.Monitors.Memory; m != nil {
		opts := memoryOptions(cfg, m, logger)
		if err := opts.Validate(); err != nil {
			return nil, err
		}
		monitors = append(monitors, monitor.NewMemory(opts))
	}
	if p := cfg.Supervisor.Monitors.Process; p != nil {
		opts := monitor.ProcessOptions{Interval: p.Interval.D(), PPID: p.PPID, Logger: logger}
		if err := opts.Validate(); err != nil {
			return nil, err
		}
		monitors = append(monitors, monitor.NewProcess(opts))
	}
	return monitors, nil
}

// memoryOptions maps [supervisor.monitors.memory] onto the monitor's
// options; each service's graceful_stop is its grace time before SIGKILL.
func memoryOptions(cfg *config.Config, m *config.MemoryMonitor, logger *slog.Logger) monitor.MemoryOptions {
	opts := monitor.MemoryOptions{
		Interval:         m.Interval.D(),
		MaximumSizeLimit: uint64(m.MaximumSizeLimit),
		TotalSizeLimit:   uint64(m.TotalSizeLimit),
		FreeSizeMinimum:  uint64(m.FreeSizeMinimum),
		IncreaseLimit:    m.IncreaseLimit,
		ThresholdSize:    uint64(m.ThresholdSize),
		DumpDirectory:    m.DumpDirectory,
		Services:         make(map[string]monitor.ServiceLimits),
		Logger:           logger,
	}
	if s := m.MemorySample; s != nil {
		opts.MemorySample = &monitor.SampleOptions{Duration: s.Duration.D(), Timeout: s.Timeout.D()}
	}
	for _, svc := range cfg.Services {
		l := m.LimitsFor(svc.Name)
		opts.Services[svc.Name] = monitor.ServiceLimits{
			MaximumSizeLimit: uint64(l.MaximumSizeLimit),
			IncreaseLimit:    l.IncreaseLimit,
			ThresholdSize:    uint64(l.ThresholdSize),
			GracefulStop:     svc.GracefulStop.D(),
		}
	}
	return opts
}
