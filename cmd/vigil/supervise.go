package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/internal/config"
	"github.com/vigild/vigil/notify"
	"github.com/vigild/vigil/supervisor"
)

// newLogger returns the slog logger that --log-format asks for, on stderr.
func newLogger(format string) (*slog.Logger, error) {
	return newLoggerTo(os.Stderr, format)
}

// newLoggerTo is newLogger writing to w.
func newLoggerTo(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: expected text or json", format)
	}
}

func newSuperviseCmd() *cobra.Command {
	var (
		socket    string
		logFormat string
		allowUIDs []int
		allowGIDs []int
		group     int
		cfgPath   string
		parent    int
	)
	cmd := &cobra.Command{
		Use:   "supervise",
		Short: "Run the supervisor server on its Unix socket (vigil run starts it for you)",
		Long: `Run the supervisor server: workers connect to its Unix socket and register,
operators query it, and its monitors watch the workers. It serves until
SIGINT or SIGTERM, then removes its socket.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			logger, err := newLogger(logFormat)
			if err != nil {
				return err
			}
			var monitors []supervisor.Monitor
			if cfgPath != "" {
				cfg, err := config.Load(cfgPath, os.Getenv)
				if err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				if !cmd.Flags().Changed("socket") {
					socket = cfg.Supervisor.Socket
				}
				if monitors, err = buildMonitors(cfg, logger); err != nil {
					return &exitError{code: exitUsage, err: err}
				}
			}
			usageDone(cmd)
			// Threads the runtime will need, made now: a process limit the
			// children fill later cannot make it abort.
			container.ReserveThreads(reserveThreads)
			opts := supervisor.ListenOptions{AllowUIDs: allowUIDs, AllowGIDs: allowGIDs, Logger: logger}
			if cmd.Flags().Changed("socket-group") {
				opts.Group = &group
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return serve(ctx, socket, opts, &supervisor.Server{Monitors: monitors, Logger: logger, ParentPID: parent})
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", supervisor.DefaultSocket, "the socket's path")
	f.StringVar(&logFormat, "log-format", "text", "log format on stderr: text or json")
	f.IntSliceVar(&allowUIDs, "allow-uid", nil, "a further uid that may connect (repeatable)")
	f.IntSliceVar(&allowGIDs, "allow-gid", nil, "a further gid that may connect (repeatable)")
	f.IntVar(&group, "socket-group", 0, "gid owning the socket (mode 0660 instead of 0600)")
	f.IntVar(&parent, "controller-pid", 0, "the controller: the process restart signals and the only one that may register as role=controller (default: the parent process)")
	f.StringVarP(&cfgPath, "config", "c", "", "vigil.toml whose [supervisor.monitors] to run (and whose socket, unless --socket)")
	return cmd
}

// serve listens on socket and serves srv until ctx ends.
func serve(ctx context.Context, socket string, opts supervisor.ListenOptions, srv *supervisor.Server) error {
	logger := srv.Logger
	l, err := supervisor.Listen(socket, opts)
	if err != nil {
		return err
	}
	defer l.Close()
	logger.Info("supervisor listening", "socket", l.Path(), "pid", os.Getpid())
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
	err = srv.Serve(ctx, l)
	logger.Info("supervisor stopped", "socket", l.Path())
	return err
}
