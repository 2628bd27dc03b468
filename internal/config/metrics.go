package config

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// fileMetrics is the [metrics] table.
type fileMetrics struct {
	Listen        *string       `toml:"listen"`
	SocketMode    *string       `toml:"socket_mode"`
	Workers       *bool         `toml:"workers"`
	WorkerTimeout *tomlDuration `toml:"worker_timeout"`
}

// Defaults of the [metrics] table.
const (
	// DefaultMetricsSocketMode is the mode of a metrics Unix socket.
	DefaultMetricsSocketMode os.FileMode = 0o600
	// DefaultMetricsWorkerTimeout bounds a scrape's wait for the workers'
	// own metrics.
	DefaultMetricsWorkerTimeout = Duration(2 * time.Second)
)

// Metrics is the [metrics] table: where the supervisor serves /metrics for
// Prometheus. Listen "" (the table or the key left out) means off, and
// then every field is zero.
type Metrics struct {
	// Listen is a TCP address ("127.0.0.1:9464", ":9464") or the absolute
	// path of a Unix socket (a value with a slash, relative to the
	// configuration's directory); "" is off.
	Listen string
	// SocketMode is the Unix socket's mode (socket_mode, an octal string
	// such as "0660"; default 0600).
	SocketMode os.FileMode
	// Workers asks the workers that offer their own metrics for them at
	// each scrape (default off).
	Workers bool
	// WorkerTimeout bounds a scrape's wait for the workers' metrics
	// (default 2s).
	WorkerTimeout Duration
}

// IsSocket reports whether Listen is a Unix socket's path.
func (m Metrics) IsSocket() bool { return strings.HasPrefix(m.Listen, "/") }

// metrics validates the [metrics] table: its zero value when the table is
// left out.
func (v *validator) metrics(f *fileMetrics, dir string) Metrics {
	if f == nil {
		return Metrics{}
	}
	m := Metrics{SocketMode: DefaultMetricsSocketMode, WorkerTimeout: DefaultMetricsWorkerTimeout}
	key := func(k string) []string { return []string{"metrics", k} }
	if f.Listen != nil {
		m.Listen = v.metricsListen(key("listen"), *f.Listen, dir)
	}
	if f.SocketMode != nil {
		mode, err := strconv.ParseUint(*f.SocketMode, 8, 32)
		switch {
		case err != nil || mode > 0o777:
			v.fail(key("socket_mode"), "%q is not a file mode: want an octal string such as \"0660\"", *f.SocketMode)
		case !m.IsSocket():
			v.fail(key("socket_mode"), "applies to a Unix socket only: metrics.listen is not a path")
		case mode&0o600 != 0o600:
			v.fail(key("socket_mode"), "%s leaves the socket's owner (the supervisor) without read and write", *f.SocketMode)
		default:
			m.SocketMode = os.FileMode(mode)
		}
	}
	if f.Workers != nil {
		m.Workers = *f.Workers
	}
	m.WorkerTimeout = v.positive(key("worker_timeout"), v.duration(key("worker_timeout"), f.WorkerTimeout, m.WorkerTimeout))
	if m.Listen == "" {
		return Metrics{} // off
	}
	return m
}

// metricsListen checks metrics.listen: a path (it has a slash) is resolved
// against dir; anything else is a TCP host:port.
func (v *validator) metricsListen(key []string, s, dir string) string {
	if s == "" {
		return ""
	}
	if strings.Contains(s, "/") {
		p := resolve(dir, s)
		if len(p) > maxSocketPath {
			v.fail(key, "socket path %q is %d bytes long, at most %d fit in a Unix socket address", p, len(p), maxSocketPath)
		}
		return p
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		v.fail(key, "%q is neither a TCP address (\"127.0.0.1:9464\", \":9464\") nor a socket path (one with a slash, \"./metrics.sock\")", s)
		return ""
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		v.fail(key, "%q: port %q is not a number from 1 to 65535", s, port)
		return ""
	}
	return s
}
