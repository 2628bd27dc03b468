package container

import "log/slog"

// SubreaperOptions configure NewSubreaper.
type SubreaperOptions struct {
	// RunID names the run in every child's environment (EnvRun); it must
	// be unique to the run. Required.
	RunID string
	// Logger receives what the subreaper does (nil = discard).
	Logger *slog.Logger
	// NoCgroups tracks descendants by process group and descent only,
	// even where a cgroup v2 hierarchy is writable.
	NoCgroups bool
}
