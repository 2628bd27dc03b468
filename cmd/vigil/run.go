package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/control"
	"github.com/vigild/vigil/internal/config"
	"github.com/vigild/vigil/logs"
	"github.com/vigild/vigil/notify"
	"github.com/vigild/vigil/supervisor"
	"github.com/vigild/vigil/worker"
)

// EnvSupervisorSocket gives supervised workers the supervisor socket's
// path, and names the socket for the operator commands without --socket.
const EnvSupervisorSocket = worker.EnvSupervisorSocket

func newRunCmd() *cobra.Command {
	var (
		path, logFormat string
		strict          bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the supervisor and every configured service, and keep them alive",
		Long: `Run the controller: it starts the supervisor (vigil supervise) and each
service's workers from vigil.toml, restarts them when they fail, and tells
its own parent (systemd, Kubernetes via NOTIFY_LOG) when everything is ready.

A service that cannot start (never ready, not found, crash loop) is a state
of that service: the others run on, and it is retried; a service with
required = true (every one, with --strict) stops everything instead.

SIGINT, SIGTERM or SIGQUIT stops everything gracefully, the supervisor last;
a second one while it stops kills what is left at once.
SIGHUP (or SIGUSR2) re-reads the configuration and applies it by difference:
services added start, removed ones stop, changed ones are replaced
blue/green (their new workers must all be ready before the old ones stop;
if they are not, the old ones keep running), unchanged ones are not
touched. An invalid configuration changes nothing. SIGUSR1 logs every
child's state.`,
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
			// What vigil run inherited (a shell's, a service manager's
			// descriptors) is not passed on to the workers.
			if err := container.InheritNothing(); err != nil {
				logger.Warn("inherited descriptors may reach the workers", "error", err)
			}
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
			return runController(ctx, path, cfg, strict, hup, logger)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", defaultConfig, "the configuration file")
	cmd.Flags().StringVar(&logFormat, "log-format", "", "log format on stderr: text or json (default: supervisor.log_format)")
	cmd.Flags().BoolVar(&strict, "strict", false, "every service is required: one that cannot start stops everything (the original's behaviour)")
	return cmd
}

// reserveThreads is how many threads vigil run and vigil supervise make
// at start and keep (see container.ReserveThreads).
const reserveThreads = 16

// runController runs the controller until ctx ends, reloading on SIGHUP
// and SIGUSR2 and logging its children on SIGUSR1 (from signals).
func runController(ctx context.Context, path string, cfg *config.Config, strict bool, signals <-chan os.Signal, logger *slog.Logger) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if w := pipeWarning(cfg); w != "" {
		logger.Warn(w)
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

	// The supervisor's socket is bound here, once, and handed to every
	// supervisor started: a new one (a reload that changed its settings,
	// vigil restart supervisor, a crash) takes over beside the old one and
	// nothing is refused meanwhile.
	sock, err := supervisor.Listen(cfg.Supervisor.Socket, socketOptions(cfg, logger))
	if err != nil {
		if errors.Is(err, supervisor.ErrSupervisorRunning) {
			return &exitError{code: exitFailed, err: fmt.Errorf("a supervisor is already listening on %s", cfg.Supervisor.Socket)}
		}
		return err
	}
	defer sock.Close()
	sockFile, err := sock.File()
	if err != nil {
		return err
	}
	defer sockFile.Close()
	r := &controllerRun{exe: exe, path: path, logger: logger, up: up, cfg: cfg, sockFile: sockFile,
		supConf: supervisorConfigFor(cfg, supervisorConfig{})}
	defer r.closeConfs()

	// The children's output: captured by one hub (console, files,
	// journal, and the rings vigil logs reads).
	set, perService := hubSettings(cfg)
	hub := logs.New(logs.Options{Settings: set, Services: perService, Console: os.Stdout, Logger: logger.With("component", "logs")})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if err := hub.Close(ctx); err != nil {
			logger.Warn("children's output abandoned", "error", err)
		}
	}()
	r.hub = hub

	ctrl, err := container.NewController(r.specs(cfg, r.supConf), container.ControllerOptions{
		Notify:    up,
		Logger:    logger,
		Logs:      hub,
		Subreaper: core.reaper,
		Strict:    strict,
	})
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	r.ctrl = ctrl

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	// The controller registers with its supervisor like a worker, and
	// serves its children's state and the lifecycle commands through it,
	// as soon as the supervisor is up: the other services may still be
	// starting.
	tracking := ""
	if core.reaper != nil {
		tracking = core.reaper.Tracking()
	}
	handlers := control.Handlers(ctrl, control.Options{Tracking: tracking, Logs: hub, Reload: r.reload})
	handlers[control.MetricsOperation] = control.MetricsHandler(ctrl)
	wg.Go(func() {
		if ctrl.WaitStarted(ctx) != nil {
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

	// The start is a burst of allocations that are garbage at once (each
	// spawn's pipes, environment and state, its log lines); with the
	// controller's heap of 2-3 MB, the collector ran every few hundred
	// spawns, at 4-6 ms of CPU each (5% of the controller's CPU starting
	// 1,000 workers). It collects less often until every service has
	// started; the trim gives back what that left. (A GOGC above that, or
	// off, is left as it is.)
	gcPercent := debug.SetGCPercent(startGCPercent)
	if gcPercent < 0 || gcPercent > startGCPercent {
		debug.SetGCPercent(gcPercent)
	}
	wg.Go(func() {
		_ = ctrl.WaitReady(ctx)
		debug.SetGCPercent(gcPercent)
	})

	// Once every service has started, what the start-up left is given back.
	wg.Go(func() {
		if ctrl.WaitStarted(ctx) == nil {
			startTrim(ctx, &wg, logger)
		}
	})

	// systemd's watchdog, while the controller answers: a controller stuck
	// on its own loop stops feeding it.
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
				// SIGHUP, SIGUSR2: the configuration read anew and applied
				// by difference.
				logger.Info("reloading", "config", path, "signal", sig.String())
				_, _ = r.reload(ctx) // logged and notified there
			}
		}
	})

	// Asked to stop (ctx ends: SIGINT, SIGTERM, SIGQUIT), the stop is
	// graceful; asked again, everything left is killed at once.
	ran := make(chan struct{})
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-ran:
			return
		}
		again := make(chan os.Signal, 1)
		signal.Notify(again, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
		defer signal.Stop(again)
		logger.Info("stopping gracefully; the signal again stops everything at once")
		select {
		case sig := <-again:
			logger.Warn("asked again to stop: killing everything at once", "signal", sig.String())
			ctrl.StopNow()
		case <-ran:
		}
	})
	err = ctrl.Run(ctx)
	close(ran)
	cancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// controllerRun is what a running vigil run keeps: the configuration in force,
// and the socket it hands to each supervisor.
type controllerRun struct {
	exe, path string
	logger    *slog.Logger
	up        notify.Client
	ctrl      *container.Controller
	sockFile  *os.File // the listening socket, for the supervisor's spec
	hub       *logs.Hub

	mu      sync.Mutex // serialises reloads
	cfg     *config.Config
	supConf supervisorConfig // the supervisor's document, for its spec
	// spareConfs are documents of reloads that failed, kept open.
	spareConfs []supervisorConfig
}

// socketOptions are the supervisor socket's permissions in cfg.
func socketOptions(cfg *config.Config, logger *slog.Logger) supervisor.ListenOptions {
	opts := supervisor.ListenOptions{AllowUIDs: cfg.Supervisor.AllowUIDs, AllowGIDs: cfg.Supervisor.AllowGIDs,
		Logger: logger, HealInterval: -1} // the supervisor heals it; vigil run never accepts on it
	if cfg.Supervisor.SocketGroup != "" {
		gid := cfg.Supervisor.SocketGID
		opts.Group = &gid
	}
	return opts
}

// reload reads the configuration anew and applies it by difference (see
// container.Controller.Reload). A configuration vigil run would refuse is
// refused (its error names the key and line) and nothing changes.
//
// Whoever asked (SIGHUP, vigil reload), the outcome is logged, and a
// refusal notified upward.
func (r *controllerRun) reload(ctx context.Context) ([]container.ServiceChange, error) {
	changes, err := r.reloadConfig(ctx)
	if err != nil {
		r.logger.Error("reload refused: the running services stay as they were", "error", err)
		_ = notify.Error(r.up, "Reload refused: "+err.Error(), -1)
	} else {
		r.logger.Info("reload done")
	}
	return changes, err
}

func (r *controllerRun) reloadConfig(ctx context.Context) ([]container.ServiceChange, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg, err := config.Load(r.path, os.Getenv)
	if err == nil {
		err = cfg.Preflight()
	}
	if err == nil {
		err = checkRoom(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("the configuration is refused: %w", err)
	}
	if cfg.Supervisor.Socket != r.cfg.Supervisor.Socket {
		return nil, fmt.Errorf("supervisor.socket changed from %s to %s: a reload cannot move the socket (restart vigil run)", r.cfg.Supervisor.Socket, cfg.Supervisor.Socket)
	}
	if err := supervisor.SetPermissions(cfg.Supervisor.Socket, socketOptions(cfg, r.logger)); err != nil {
		return nil, err
	}
	set, perService := hubSettings(cfg)
	r.hub.Configure(set, perService) // for the processes started from now on
	conf := supervisorConfigFor(cfg, r.supConf)
	changes, err := r.ctrl.Reload(ctx, r.specs(cfg, conf))
	for _, ch := range changes {
		if ch.Change != "unchanged" {
			r.logger.Info("reload", "service", ch.Service, "change", ch.Change, "error", ch.Err)
		}
	}
	if err != nil {
		// The new document is in use if the supervisor was replaced and
		// something else failed: it stays open until the run ends. If
		// the new supervisor is what failed, nothing holds it.
		if conf.file != nil && conf.file != r.supConf.file {
			if inForce(r.ctrl.Specs(), conf.file) {
				r.spareConfs = append(r.spareConfs, conf)
			} else {
				conf.file.Close()
			}
		}
		return changes, err
	}
	r.supConf.closeUnless(conf) // the old spec is gone
	r.cfg, r.supConf = cfg, conf
	return changes, nil
}

// inForce reports whether a spec of specs hands its children f.
func inForce(specs []container.Spec, f *os.File) bool {
	for _, s := range specs {
		if slices.Contains(s.Files, f) {
			return true
		}
	}
	return false
}

// closeConfs closes the supervisors' documents, once the controller has
// stopped.
func (r *controllerRun) closeConfs() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.spareConfs {
		c.closeUnless(r.supConf)
	}
	r.supConf.closeUnless(supervisorConfig{})
}

// startGCPercent is the controller's GOGC while its services start (see
// runController).
const startGCPercent = 400

// SupervisorService is the name of the controller's supervisor child.
const SupervisorService = config.ReservedServiceName

// specs turns the configuration into the controller's specs: the
// supervisor (persistent, started first and stopped last) and the services.
func (r *controllerRun) specs(cfg *config.Config, conf supervisorConfig) []container.Spec {
	return specs(r.exe, cfg, r.sockFile, conf.file)
}

// EnvSupervisorDigest carries a digest of the supervisor's settings in its
// environment, so that a reload that changes them (monitors, limits,
// roles, allowed users) replaces the supervisor, and one that does not
// leaves it alone.
const EnvSupervisorDigest = "VIGIL_SUPERVISOR_DIGEST"

// specs is the controller's specs for cfg; sock (nil: none) is the
// listening socket the supervisor is handed, conf (nil: none) the document
// it reads its settings from (else it reads the file).
func specs(exe string, cfg *config.Config, sock, conf *os.File) []container.Spec {
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
	supSpec := container.Spec{
		Name:           SupervisorService,
		Command:        args,
		Dir:            cfg.Dir,
		Env:            []string{EnvSupervisorDigest + "=" + supervisorDigest(cfg)},
		Count:          1,
		Restart:        true,
		Persistent:     true,
		Required:       true,
		Readiness:      container.ReadyNotify,
		StartupTimeout: 30 * time.Second,
		GracefulStop:   10 * time.Second,
		// Everything goes through it: however often it dies, it comes back
		// within a second.
		RestartDelay:    50 * time.Millisecond,
		RestartDelayMax: time.Second,
	}
	// Files are the child's descriptors from 4 on (3 is the readiness pipe).
	if sock != nil {
		supSpec.Files = append(supSpec.Files, sock)
		supSpec.Command = append(supSpec.Command, "--listen-fd", strconv.Itoa(3+len(supSpec.Files)))
	}
	if conf != nil && cfg.Path != "" {
		supSpec.Files = append(supSpec.Files, conf)
		supSpec.Command = append(supSpec.Command, "--config-fd", strconv.Itoa(3+len(supSpec.Files)))
	}
	out := []container.Spec{supSpec}
	for _, s := range cfg.Services {
		out = append(out, serviceSpec(s, sup.Socket))
	}
	return out
}

// serviceSpec is the container's spec of one configured service.
func serviceSpec(s config.Service, socket string) container.Spec {
	env := make([]string, 0, len(s.Env)+1)
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		env = append(env, k+"="+s.Env[k])
	}
	if s.Supervised {
		env = append(env, EnvSupervisorSocket+"="+socket)
	} else {
		env = append(env, EnvSupervisorSocket+"=") // not the one of vigil's own environment
	}
	readiness := container.ReadyNotify
	if s.Readiness == config.ReadinessStarted {
		readiness = container.ReadyStarted
	}
	spec := container.Spec{
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
		Required:           s.Required,
		Stopped:            !s.Autostart,
		SharedCgroup:       !s.OwnCgroup,
		StartLimitBurst:    s.StartLimitBurst,
		StartLimitInterval: s.StartLimitInterval.D(),
		Port:               s.Port,
		Rolling:            s.Reload == config.ReloadRolling,
	}
	if sig, err := supervisor.ParseSignal(strings.TrimPrefix(s.StopSignal, "SIG")); err == nil {
		spec.StopSignal = sig
	}
	if s.User != "" || s.Group != "" {
		spec.Credential = &syscall.Credential{Uid: uint32(s.UID), Gid: uint32(s.GID)}
	}
	setProbes(&spec, s)
	return spec
}
