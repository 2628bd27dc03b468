package config

import (
	"fmt"
	"io"

	"github.com/pelletier/go-toml/v2"
)

type encConfig struct {
	Supervisor encSupervisor         `toml:"supervisor"`
	Services   map[string]encService `toml:"services,omitempty"`
	Metrics    *encMetrics           `toml:"metrics,omitempty"`
}

type encMetrics struct {
	Listen        string   `toml:"listen"`
	SocketMode    string   `toml:"socket_mode,omitempty"`
	Workers       bool     `toml:"workers"`
	WorkerTimeout Duration `toml:"worker_timeout"`
}

type encSupervisor struct {
	Socket      string   `toml:"socket"`
	AllowUIDs   []int    `toml:"allow_uids,omitempty"`
	AllowGroups []string `toml:"allow_groups,omitempty"`
	SocketGroup string   `toml:"socket_group,omitempty"`
	LogFormat   string   `toml:"log_format"`
	LogLevel    string   `toml:"log_level"`

	MaxLineSize    Size     `toml:"max_line_size"`
	MaxStateSize   Size     `toml:"max_state_size"`
	MaxStateDepth  int      `toml:"max_state_depth"`
	MaxInFlight    int      `toml:"max_in_flight"`
	LineTimeout    Duration `toml:"line_timeout"`
	MaxConnections int      `toml:"max_connections"`

	Readers    *[]string `toml:"readers,omitempty"`
	Operators  []string  `toml:"operators,omitempty"`
	Diagnosers []string  `toml:"diagnosers,omitempty"`

	Monitors *encMonitors `toml:"monitors,omitempty"`
}

type encMonitors struct {
	Memory  *encMemory  `toml:"memory,omitempty"`
	Process *encProcess `toml:"process,omitempty"`
}

type encMemory struct {
	Interval         Duration                   `toml:"interval"`
	MaximumSizeLimit Size                       `toml:"maximum_size_limit,omitempty"`
	TotalSizeLimit   Size                       `toml:"total_size_limit,omitempty"`
	FreeSizeMinimum  Size                       `toml:"free_size_minimum,omitempty"`
	IncreaseLimit    int                        `toml:"increase_limit,omitempty"`
	ThresholdSize    Size                       `toml:"threshold_size"`
	MemorySample     *encSample                 `toml:"memory_sample,omitempty,inline"`
	DumpDirectory    string                     `toml:"dump_directory,omitempty"`
	Services         map[string]encServiceLimit `toml:"services,omitempty"`
}

type encSample struct {
	Duration Duration `toml:"duration"`
	Timeout  Duration `toml:"timeout"`
}

type encServiceLimit struct {
	MaximumSizeLimit Size `toml:"maximum_size_limit"`
	IncreaseLimit    int  `toml:"increase_limit"`
	ThresholdSize    Size `toml:"threshold_size"`
}

type encProcess struct {
	Interval Duration `toml:"interval"`
	PPID     int      `toml:"ppid" comment:"0 means the supervisor's parent"`
}

type encService struct {
	Command            []string          `toml:"command"`
	Count              int               `toml:"count"`
	Restart            bool              `toml:"restart"`
	StartupTimeout     Duration          `toml:"startup_timeout" comment:"0s means no limit"`
	HealthCheckTimeout Duration          `toml:"health_check_timeout" comment:"0s means no limit"`
	GracefulStop       Duration          `toml:"graceful_stop"`
	RestartDelay       Duration          `toml:"restart_delay"`
	RestartDelayMax    Duration          `toml:"restart_delay_max"`
	StableAfter        Duration          `toml:"stable_after"`
	Dir                string            `toml:"dir"`
	Env                map[string]string `toml:"env,omitempty"`
	Supervised         bool              `toml:"supervised"`
	Readiness          any               `toml:"readiness"`
	Health             *encProbe         `toml:"health,omitempty,inline"`
	Required           bool              `toml:"required"`
	Autostart          bool              `toml:"autostart"`
	OwnCgroup          bool              `toml:"own_cgroup"`
	User               string            `toml:"user,omitempty"`
	Group              string            `toml:"group,omitempty"`
	EnvFile            string            `toml:"env_file,omitempty"`
	StopSignal         string            `toml:"stop_signal"`
	StartLimit         *encStartLimit    `toml:"start_limit,omitempty,inline"`
	Port               int               `toml:"port,omitempty"`
	Reload             string            `toml:"reload"`
}

type encProbe struct {
	HTTP             string   `toml:"http,omitempty"`
	TCP              string   `toml:"tcp,omitempty"`
	Exec             []string `toml:"exec,omitempty"`
	Interval         Duration `toml:"interval,omitempty"`
	Timeout          Duration `toml:"timeout,omitempty"`
	FailureThreshold int      `toml:"failure_threshold,omitempty"`
	SuccessThreshold int      `toml:"success_threshold,omitempty"`
	InitialDelay     Duration `toml:"initial_delay,omitempty"`
}

type encStartLimit struct {
	Burst    int      `toml:"burst"`
	Interval Duration `toml:"interval"`
}

// encodeProbe is p as a table, nil for none.
func encodeProbe(p *Probe) *encProbe {
	if p == nil {
		return nil
	}
	e := encProbe(*p)
	return &e
}

// Encode writes the effective configuration as TOML: every default filled
// in, paths absolute, durations and sizes as strings. Parse reads it back
// to an equal Config (but for Path).
func (c *Config) Encode(w io.Writer) error {
	e := encConfig{Supervisor: encSupervisor{
		Socket: c.Supervisor.Socket, AllowUIDs: c.Supervisor.AllowUIDs,
		AllowGroups: c.Supervisor.AllowGroups, SocketGroup: c.Supervisor.SocketGroup,
		LogFormat: c.Supervisor.LogFormat, LogLevel: c.Supervisor.LogLevel,
		MaxLineSize: c.Supervisor.Limits.MaxLineSize, MaxStateSize: c.Supervisor.Limits.MaxStateSize,
		MaxStateDepth: c.Supervisor.Limits.MaxStateDepth, MaxInFlight: c.Supervisor.Limits.MaxInFlight,
		LineTimeout: c.Supervisor.Limits.LineTimeout, MaxConnections: c.Supervisor.Limits.MaxConnections,
		Operators: c.Supervisor.Operators.Names, Diagnosers: c.Supervisor.Diagnosers.Names,
	}}
	if r := c.Supervisor.Readers; r != nil {
		names := append([]string{}, r.Names...)
		e.Supervisor.Readers = &names
	}
	mon := c.Supervisor.Monitors
	if mon.Memory != nil || mon.Process != nil {
		e.Supervisor.Monitors = &encMonitors{}
	}
	if m := mon.Memory; m != nil {
		em := &encMemory{Interval: m.Interval, MaximumSizeLimit: m.MaximumSizeLimit,
			TotalSizeLimit: m.TotalSizeLimit, FreeSizeMinimum: m.FreeSizeMinimum,
			IncreaseLimit: m.IncreaseLimit, ThresholdSize: m.ThresholdSize, DumpDirectory: m.DumpDirectory}
		if m.MemorySample != nil {
			em.MemorySample = &encSample{Duration: m.MemorySample.Duration, Timeout: m.MemorySample.Timeout}
		}
		for name, l := range m.Services {
			if em.Services == nil {
				em.Services = map[string]encServiceLimit{}
			}
			em.Services[name] = encServiceLimit(l)
		}
		e.Supervisor.Monitors.Memory = em
	}
	if p := mon.Process; p != nil {
		e.Supervisor.Monitors.Process = &encProcess{Interval: p.Interval, PPID: p.PPID}
	}
	for _, s := range c.Services {
		if e.Services == nil {
			e.Services = map[string]encService{}
		}
		es := encService{
			Command: s.Command, Count: s.Count, Restart: s.Restart,
			StartupTimeout: s.StartupTimeout, HealthCheckTimeout: s.HealthCheckTimeout,
			GracefulStop: s.GracefulStop, RestartDelay: s.RestartDelay,
			RestartDelayMax: s.RestartDelayMax, StableAfter: s.StableAfter, Dir: s.Dir,
			Env: s.Env, Supervised: s.Supervised, Readiness: string(s.Readiness),
			Health: encodeProbe(s.HealthProbe), Required: s.Required, Autostart: s.Autostart,
			OwnCgroup: s.OwnCgroup,
			User:      s.User, Group: s.Group, EnvFile: s.EnvFile, StopSignal: s.StopSignal,
			Port: s.Port, Reload: s.Reload,
		}
		if s.ReadinessProbe != nil {
			es.Readiness = encodeProbe(s.ReadinessProbe)
		}
		if s.StartLimitBurst > 0 {
			es.StartLimit = &encStartLimit{Burst: s.StartLimitBurst, Interval: s.StartLimitInterval}
		}
		e.Services[s.Name] = es
	}
	if m := c.Metrics; m.Listen != "" {
		e.Metrics = &encMetrics{Listen: m.Listen, Workers: m.Workers, WorkerTimeout: m.WorkerTimeout}
		if m.IsSocket() {
			e.Metrics.SocketMode = fmt.Sprintf("%04o", m.SocketMode)
		}
	}
	enc := toml.NewEncoder(w)
	enc.SetIndentTables(false)
	if err := enc.Encode(e); err != nil {
		return fmt.Errorf("config: encode: %w", err)
	}
	return nil
}
