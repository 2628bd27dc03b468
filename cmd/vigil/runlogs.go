package main

import (
	"github.com/vigild/vigil/internal/config"
	"github.com/vigild/vigil/logs"
)

// logSettings turns a logs table of the configuration into package logs'
// settings: its defaults, then what the table sets.
func logSettings(l config.Logs) logs.Settings {
	s := logs.DefaultSettings()
	if l.Console != nil {
		s.Console = *l.Console
	}
	if l.Format != "" {
		s.Format = l.Format
	}
	if l.Dir != nil {
		s.Dir = *l.Dir
	}
	if l.MaxSize > 0 {
		s.MaxSize = int64(l.MaxSize)
	}
	if l.Keep != nil {
		s.Keep = *l.Keep
	}
	if l.Compress != nil {
		s.Compress = *l.Compress
	}
	if l.Journal != nil {
		s.Journal = *l.Journal
	}
	if l.Lines > 0 {
		s.RingLines = l.Lines
	}
	return s
}

// hubSettings are the hub's settings for cfg: the [logs] table's, and
// each service's.
func hubSettings(cfg *config.Config) (logs.Settings, map[string]logs.Settings) {
	services := make(map[string]logs.Settings, len(cfg.Services))
	for _, s := range cfg.Services {
		services[s.Name] = logSettings(s.Logs)
	}
	return logSettings(cfg.Logs), services
}
