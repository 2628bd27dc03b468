package main

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/control"
	"github.com/vigild/vigil/internal/config"
	"github.com/vigild/vigil/logs"
	"github.com/vigild/vigil/notify"
	"github.com/vigild/vigil/worker"
)

// EnvSupervisorSocket gives supervised workers the supervisor socket's
// path, and names the socket for the operator commands without --socket.
const EnvSupervisorSocket = worker.EnvSupervisorSocket

func newRunCmd() *cobra.Command {
	var path, logFormat string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the supervisor and every configured service, and keep them alive",
		Long: `Run the controller: it starts the supervisor (vigil supervise) and each
service's workers from vigil.toml, restarts them when they fail, and tells
its own parent (systemd, Kubernetes via NOTIFY_LOG) when everything is ready.

SIGINT, SIGTERM or SIGQUIT stops everything gracefully, the supervisor last.
SIGHUP (or SIGUSR2) re-reads the configuration and restarts the services
blue/green: the new workers must all be ready before the old ones are
stopped; if they are not, or the configuration is invalid, the old ones keep
running. SIGUSR1 logs every child's state.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("log-format") {
				logFormat = cfg.Supervisor.LogFormat
			}
			// The controller logs while it restarts children: a slow stderr
			// must not hold it up, nor a stuck one its exit.
			stderr := logs.NewWriter(os.Stderr, logs.WriterOptions{Name: "vigil"})
			defer func() {
				// With the children's output's own 500 ms, exit comes at
				// most 1 s after the children are gone.
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				defer cancel()
				_, _ = stderr.Close(ctx)
			}()
			logger, err := newLoggerTo(stderr, logFormat)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			usageDone(cmd)
			// Threads the runtime will need, made now: a process limit the
			// children fill later cannot make it abort.
			container.ReserveThreads(reserveThreads)
			// Every signal the supervisor's restart may send is handled from
			// here on, before anything starts.
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
			defer signal.Stop(hup)
			// A closed stdout or stderr (vigil run | head, a log shipper that
			// restarts) fails writes instead of killing the whole tree.
			signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
			return runController(ctx, path, cfg, hup, logger)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", defaultConfig, "the configuration file")
	cmd.Flags().StringVar(&logFormat, "log-format", "", "log format on stderr: text or json (default: supervisor.log_format)")
	return cmd
}

// reserveThreads is how many threads vigil run and vigil supervise make
// at start and keep (see container.ReserveThreads).
const reserveThreads = 16

// runController runs the controller until ctx ends, reloading on SIGHUP
// and SIGUSR2 and logging its children on SIGUSR1 (from signals).
func runController(ctx context.Context, path string, cfg *config.Config, signals <-chan os.Signal, logger *slog.Logger) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	up, err := notify.New(os.Getenv, logger)
	if err != nil {
		logger.Warn("readiness notifications upward are off", "error", err)
		up = notify.Nop{}
	}
	defer up.Close()

	core, err := startRunCore(exe, cfg, logger)
	if err != nil {
		return err
	}
	defer core.finish()

	ctrl, err := container.NewController(specs(exe, cfg), container.ControllerOptions{
		Notify:    up,
		Logger:    logger,
		Output:    os.Stdout,
		Subreaper: core.reaper,
	})
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	// The controller registers with its supervisor like a worker, and
	// serves its children's state and restarts through it, once the
	// supervisor is up.
	tracking := ""
	if core.reaper != nil {
		tracking = core.reaper.Tracking()
	}
	handlers := control.Handlers(ctrl, control.Options{Tracking: tracking})
	wg.Go(func() {
		if ctrl.WaitReady(ctx) != nil {
			return
		}
		w, err := worker.Start(ctx, worker.Options{
			Socket:   cfg.Supervisor.Socket,
			Name:     "controller",
			State:    map[string]any{"role": "controller"},
			Handlers: handlers,
			Logger:   logger.With("component", "controller-link"),
			MinPause: 50 * time.Millisecond,
			MaxPause: time.Second,
		})
		if err != nil {
			logger.Error("cannot connect to the supervisor", "error", err)
			return
		}
		w.Wait()
	})

	// systemd's watchdog, while the controller answers: a controller stuck
	// on its own lock stops feeding it.
	wg.Go(func() {
		healthy := func() bool { ctrl.Children(); return true }
		if err := notify.Watchdog(ctx, up, os.Getenv, healthy); err != nil {
			logger.Warn("watchdog stopped", "error", err)
		}
	})

	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-signals:
				if sig == syscall.SIGUSR1 {
					for _, c := range ctrl.Children() {
						logger.Info("child", "name", c.Name(), "pid", c.PID, "state", c.State.String(), "restarts", c.Restarts, "uptime", c.Uptime.Round(time.Second))
					}
					continue
				}
				// SIGHUP, SIGUSR2: blue/green restart with the configuration
				// read anew.
				reload(ctx, ctrl, path, exe, up, logger)
			}
		}
	})

	err = ctrl.Run(ctx)
	cancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// reload re-reads the configuration and restarts blue/green; on any
// failure the running children stay, and the error is logged and notified.
func reload(ctx context.Context, ctrl *container.Controller, path, exe string, up notify.Client, logger *slog.Logger) {
	logger.Info("SIGHUP: reloading", "config", path)
	cfg, err := config.Load(path, os.Getenv)
	if err == nil {
		err = cfg.Preflight()
	}
	if err == nil {
		err = checkRoom(cfg)
	}
	if err != nil {
		logger.Error("reload refused: the configuration is invalid; the running children stay", "error", err)
		_ = notify.Error(up, "Reload refused: "+err.Error(), -1)
		return
	}
	if err := ctrl.Reload(ctx, specs(exe, cfg)); err != nil {
		logger.Error("reload failed; the running children stay", "error", err)
		return
	}
	logger.Info("reload done")
}

// SupervisorService is the name of the controller's supervisor child.
const SupervisorService = config.ReservedServiceName

// specs turns the configuration into the controller's specs: the
// supervisor (persistent, started first and stopped last) and the services.
func specs(exe string, cfg *config.Config) []container.Spec {
	sup := cfg.Supervisor
	args := []string{exe, "supervise", "--socket", sup.Socket, "--log-format", sup.LogFormat,
		"--controller-pid", strconv.Itoa(os.Getpid())}
	if cfg.Path != "" {
		path, err := filepath.Abs(cfg.Path)
		if err != nil {
			path = cfg.Path
		}
		args = append(args, "--config", path)
	}
	for _, uid := range sup.AllowUIDs {
		args = append(args, "--allow-uid", strconv.Itoa(uid))
	}
	for _, gid := range sup.AllowGIDs {
		args = append(args, "--allow-gid", strconv.Itoa(gid))
	}
	if sup.SocketGroup != "" {
		args = append(args, "--socket-group", strconv.Itoa(sup.SocketGID))
	}
	out := []container.Spec{{
		Name:           SupervisorService,
		Command:        args,
		Dir:            cfg.Dir,
		Count:          1,
		Restart:        true,
		Persistent:     true,
		Readiness:      container.ReadyNotify,
		StartupTimeout: 30 * time.Second,
		GracefulStop:   10 * time.Second,
	}}
	for _, s := range cfg.Services {
		env := make([]string, 0, len(s.Env)+1)
		for _, k := range slices.Sorted(maps.Keys(s.Env)) {
			env = append(env, k+"="+s.Env[k])
		}
		if s.Supervised {
			env = append(env, EnvSupervisorSocket+"="+sup.Socket)
		} else {
			env = append(env, EnvSupervisorSocket+"=") // not the one of vigil's own environment
		}
		readiness := container.ReadyNotify
		if s.Readiness == config.ReadinessStarted {
			readiness = container.ReadyStarted
		}
		out = append(out, container.Spec{
			Name:               s.Name,
			Command:            s.Command,
			Dir:                s.Dir,
			Env:                env,
			Count:              s.Count,
			Restart:            s.Restart,
			Readiness:          readiness,
			StartupTimeout:     s.StartupTimeout.D(),
			HealthCheckTimeout: s.HealthCheckTimeout.D(),
			GracefulStop:       s.GracefulStop.D(),
			RestartDelay:       s.RestartDelay.D(),
			RestartDelayMax:    s.RestartDelayMax.D(),
			StableAfter:        s.StableAfter.D(),
		})
	}
	return out
}
