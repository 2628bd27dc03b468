package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/internal/config"
	"github.com/vigild/vigil/notify"
	"github.com/vigild/vigil/supervisor"
)

// newLoggerTo returns the slog logger that --log-format asks for, writing
// to w, at level info.
func newLoggerTo(w io.Writer, format string) (*slog.Logger, error) {
	return newLeveledLogger(w, format, "info")
}

// newLeveledLogger is newLoggerTo at a level: debug, info, warn or error.
func newLeveledLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "", "info":
		l = slog.LevelInfo
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		return nil, fmt.Errorf("--log-level %q: expected debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: expected text or json", format)
	}
}

// supervisorDrain is how long a supervisor handed its socket goes on
// answering what it was asked once told to stop (see
// supervisor.Server.DrainTimeout).
const supervisorDrain = 5 * time.Second

func newSuperviseCmd() *cobra.Command {
	var (
		socket    string
		logFormat string
		logLevel  string
		allowUIDs []int
		allowGIDs []int
		group     int
		cfgPath   string
		parent    int
		listenFD  int
		configFD  int
	)
	cmd := &cobra.Command{
		Use:   "supervise",
		Short: "Run the supervisor server on its Unix socket (vigil run starts it for you)",
		Long: `Run the supervisor server: workers connect to its Unix socket and register,
operators query it, and its monitors watch the workers. It serves until
SIGINT or SIGTERM, then removes its socket (unless it was handed the socket
with --listen-fd: then the socket's file is left to whoever bound it).

With --config, the [supervisor] table of vigil.toml gives the monitors, the
limits on clients, the roles (readers, operators, diagnosers), the log level,
and the socket and who may connect unless the flags say otherwise; the
[metrics] table, where /metrics is served for Prometheus.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if listenFD < -1 {
				return usageErr("--listen-fd %d: not a file descriptor", listenFD)
			}
			srv := &supervisor.Server{ParentPID: parent}
			if listenFD >= 0 {
				// The socket is shared with the supervisor that replaces
				// this one: what is under way is answered before leaving.
				srv.DrainTimeout = supervisorDrain
			}
			opts := supervisor.ListenOptions{AllowUIDs: allowUIDs, AllowGIDs: allowGIDs}
			if cmd.Flags().Changed("socket-group") {
				opts.Group = &group
			}
			var cfg *config.Config
			if cfgPath != "" {
				var err error
				if configFD >= 0 {
					cfg, err = readConfigFD(configFD, cfgPath)
				} else {
					cfg, err = config.Load(cfgPath, os.Getenv)
				}
				if err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				sup := cfg.Supervisor
				if !cmd.Flags().Changed("socket") {
					socket = sup.Socket
				}
				if !cmd.Flags().Changed("log-level") {
					logLevel = sup.LogLevel
				}
				if !cmd.Flags().Changed("allow-uid") && !cmd.Flags().Changed("allow-gid") && !cmd.Flags().Changed("socket-group") {
					opts.AllowUIDs, opts.AllowGIDs = sup.AllowUIDs, sup.AllowGIDs
					if sup.SocketGroup != "" {
						opts.Group = &sup.SocketGID
					}
				}
				srv.Limits, srv.Access = serverLimits(sup), serverAccess(sup)
			}
			logger, err := newLeveledLogger(os.Stderr, logFormat, logLevel)
			if err != nil {
				return usageErr("%v", err)
			}
			if cfg != nil {
				if srv.Monitors, err = buildMonitors(cfg, logger); err != nil {
					return &exitError{code: exitUsage, err: err}
				}
			}
			usageDone(cmd)
			// Threads the runtime will need, made now: a process limit the
			// children fill later cannot make it abort.
			container.ReserveThreads(reserveThreads)
			srv.Logger, opts.Logger = logger, logger
			var ms *metricsServer
			if cfg != nil {
				if ms, err = listenMetrics(cfg.Metrics, srv, logger); err != nil {
					return err
				}
			}
			l, err := listen(socket, listenFD, opts)
			if err != nil {
				if ms != nil {
					ms.l.Close()
				}
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if ms != nil {
				var wg sync.WaitGroup
				mctx, stopMetrics := context.WithCancel(ctx)
				wg.Go(func() { ms.serve(mctx) })
				defer func() { stopMetrics(); wg.Wait() }()
			}
			return serve(ctx, l, listenFD, srv)
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", supervisor.DefaultSocket, "the socket's path")
	f.StringVar(&logFormat, "log-format", "text", "log format on stderr: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug (shows what clients sent, in bad input), info, warn or error")
	f.IntSliceVar(&allowUIDs, "allow-uid", nil, "a further uid that may connect (repeatable)")
	f.IntSliceVar(&allowGIDs, "allow-gid", nil, "a further gid that may connect (repeatable)")
	f.IntVar(&group, "socket-group", 0, "gid owning the socket (mode 0660 instead of 0600)")
	f.IntVar(&parent, "controller-pid", 0, "the controller: the process restart signals, whatever its pid (1 included), and the only one that may register as role=controller (default: the parent process)")
	f.IntVar(&listenFD, "listen-fd", -1, "serve the listening Unix socket inherited as this file descriptor (bound at --socket) instead of binding one")
	f.StringVarP(&cfgPath, "config", "c", "", "vigil.toml whose [supervisor] table to apply (and whose socket, unless --socket)")
	f.IntVar(&configFD, "config-fd", -1, "with --config: read the document from this inherited file descriptor (what vigil run validated) rather than from the file")
	return cmd
}

// serverLimits are the [supervisor] limits for the server.
func serverLimits(sup config.Supervisor) supervisor.Limits {
	l := sup.Limits
	return supervisor.Limits{
		MaxLineSize: int(l.MaxLineSize), MaxStateSize: int(l.MaxStateSize), MaxStateDepth: l.MaxStateDepth,
		MaxInFlight: l.MaxInFlight, LineTimeout: l.LineTimeout.D(), MaxConnections: l.MaxConnections,
	}
}

// serverAccess are the [supervisor] roles for the server.
func serverAccess(sup config.Supervisor) supervisor.Access {
	a := supervisor.Access{
		Operators:  supervisor.Principals{UIDs: sup.Operators.UIDs, GIDs: sup.Operators.GIDs},
		Diagnosers: supervisor.Principals{UIDs: sup.Diagnosers.UIDs, GIDs: sup.Diagnosers.GIDs},
	}
	if r := sup.Readers; r != nil {
		a.Readers = &supervisor.Principals{UIDs: r.UIDs, GIDs: r.GIDs}
	}
	return a
}

// listen binds the socket, or takes the listening socket inherited as fd
// (when fd >= 0) bound at socket.
func listen(socket string, fd int, opts supervisor.ListenOptions) (*supervisor.Listener, error) {
	if fd < 0 {
		return supervisor.Listen(socket, opts)
	}
	f := os.NewFile(uintptr(fd), "listen-fd")
	defer f.Close() // the listener keeps a descriptor of its own
	l, err := supervisor.FileListener(f, socket, opts)
	if err != nil {
		return nil, fmt.Errorf("--listen-fd %d: %w", fd, err)
	}
	return l, nil
}

// serve serves srv on l until ctx ends.
func serve(ctx context.Context, l *supervisor.Listener, fd int, srv *supervisor.Server) error {
	logger := srv.Logger
	defer l.Close()
	if fd >= 0 {
		logger.Info("supervisor listening", "socket", l.Path(), "pid", os.Getpid(), "inherited_fd", fd)
	} else {
		logger.Info("supervisor listening", "socket", l.Path(), "pid", os.Getpid())
	}
	// Tell the controller (or systemd) that the socket is there; outside
	// vigil this is silent.
	up, err := notify.NewOrNop(os.Getenv)
	if err != nil {
		logger.Warn("readiness notifications are off", "error", err)
		up = notify.Nop{}
	}
	defer up.Close()
	if err := notify.Ready(up, "Listening on "+l.Path()); err != nil {
		logger.Warn("could not notify readiness", "error", err)
	}
	var wg sync.WaitGroup
	tctx, stopTrim := context.WithCancel(ctx)
	startTrim(tctx, &wg, logger)
	err = srv.Serve(ctx, l)
	stopTrim()
	wg.Wait()
	logger.Info("supervisor stopped", "socket", l.Path())
	return err
}
