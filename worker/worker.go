package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/vigild/vigil/rpc"
)

// Environment variables a worker gets from vigil's controller.
const (
	// EnvSupervisorSocket is the path of the supervisor's Unix socket.
	EnvSupervisorSocket = "VIGIL_SUPERVISOR_SOCKET"
	// EnvService is the name of the service the worker belongs to.
	EnvService = "VIGIL_SERVICE"
	// EnvInstance is the worker's 0-based instance number in its service.
	EnvInstance = "VIGIL_INSTANCE"
)

// Defaults of [Options].
const (
	DefaultMinPause        = 100 * time.Millisecond
	DefaultMaxPause        = 3 * time.Second
	DefaultRegisterTimeout = 10 * time.Second
	DefaultDialTimeout     = 5 * time.Second
)

// Errors that callers may test with errors.Is.
var (
	// ErrNoSupervisor is returned by [Start] when no socket path is given
	// and VIGIL_SUPERVISOR_SOCKET is unset: the program runs outside vigil
	// and may simply carry on.
	ErrNoSupervisor = errors.New("worker: no supervisor socket (VIGIL_SUPERVISOR_SOCKET is unset)")
	// ErrBadEnvironment is wrapped by [Start] when a VIGIL_ variable is set
	// to something unusable.
	ErrBadEnvironment = errors.New("worker: bad environment")
	// ErrAlreadyRunning is wrapped by the error of a diagnostic that was
	// asked for while another of the same kind is running.
	ErrAlreadyRunning = errors.New("already running")
	// ErrNotRunning is wrapped by the error of garbage_profile_stop without
	// a garbage_profile_start.
	ErrNotRunning = errors.New("not running")
)

// Options configures [Start]. The zero value is usable: it connects to
// VIGIL_SUPERVISOR_SOCKET, registers with the name and instance vigil gives,
// and serves the diagnostics.
type Options struct {
	// Socket is the supervisor's socket path (default: the environment's
	// VIGIL_SUPERVISOR_SOCKET).
	Socket string
	// Name is the registered "name" (default: VIGIL_SERVICE, else the base
	// name of the executable).
	Name string
	// State is merged into the registered state after the defaults
	// ("process_id", "name", "instance", "outputs"), so it may override
	// them.
	State map[string]any
	// Handlers are the program's own operations, by name. A handler named
	// like a diagnostic replaces it.
	Handlers rpc.Handlers
	// Logger receives connection events (nil discards).
	Logger *slog.Logger
	// Getenv reads the environment (nil means os.Getenv).
	Getenv func(string) string
	// MinPause and MaxPause bound the pause before reconnecting: it starts
	// near MinPause, doubles with each failed attempt up to MaxPause, and is
	// jittered to between half and all of that (defaults DefaultMinPause,
	// DefaultMaxPause).
	MinPause, MaxPause time.Duration
	// RegisterTimeout bounds the wait for the reply to "register" (default
	// DefaultRegisterTimeout).
	RegisterTimeout time.Duration
	// OnRegister, if set, is called with the connection id after each
	// successful registration, in the worker's goroutine: it must not block.
	OnRegister func(connectionID string)
	// Diagnostics serves the diagnostic operations (nil: a new one using
	// Logger).
	Diagnostics *Diagnostics
}

// Worker is a running connection to the supervisor, owned by the caller of
// [Start]: it ends when Start's context is cancelled or [Worker.Stop] is
// called; [Worker.Wait] waits for its goroutine.
type Worker struct {
	socket   string
	state    map[string]any
	handlers rpc.Handlers
	logger   *slog.Logger
	opts     Options

	cancel context.CancelFunc
	done   chan struct{}

	mu           sync.Mutex
	connectionID string
}

// Start begins connecting to the supervisor in a goroutine of its own and
// returns at once; the returned Worker owns that goroutine. The connection
// registers the process with state {"process_id", "name", "instance",
// "outputs"} plus opts.State, serves the operations, and is re-established after any
// failure until ctx ends or Stop is called.
//
// Errors, all before anything is started: ErrNoSupervisor when no socket
// path is known (outside vigil: the program may ignore it), and
// ErrBadEnvironment when VIGIL_INSTANCE is not a non-negative integer.
func Start(ctx context.Context, opts Options) (*Worker, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	socket := opts.Socket
	if socket == "" {
		socket = getenv(EnvSupervisorSocket)
	}
	if socket == "" {
		return nil, ErrNoSupervisor
	}
	// "outputs" tells operator tools how the diagnostics can deliver their
	// results (see Diagnostics.Handlers): inline in the reply, to a path or
	// to the log. The original's workers say nothing, and some refuse
	// inline output: vigil dump asks a worker that does not say "inline" to
	// write into a file.
	state := map[string]any{"process_id": os.Getpid(), "outputs": []string{"inline", "path", "log"}}
	name := opts.Name
	if name == "" {
		name = getenv(EnvService)
	}
	if name == "" {
		name = filepath.Base(os.Args[0])
	}
	state["name"] = name
	if v := getenv(EnvInstance); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: %s=%q is not a non-negative integer", ErrBadEnvironment, EnvInstance, v)
		}
		state["instance"] = n
	}
	for k, v := range opts.State {
		state[k] = v
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.MinPause <= 0 {
		opts.MinPause = DefaultMinPause
	}
	if opts.MaxPause <= 0 {
		opts.MaxPause = DefaultMaxPause
	}
	if opts.MaxPause < opts.MinPause {
		opts.MaxPause = opts.MinPause
	}
	if opts.RegisterTimeout <= 0 {
		opts.RegisterTimeout = DefaultRegisterTimeout
	}
	diag := opts.Diagnostics
	if diag == nil {
		diag = &Diagnostics{Logger: logger}
	}
	handlers := diag.Handlers()
	for op, h := range opts.Handlers {
		handlers[op] = h
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Worker{
		socket:   socket,
		state:    state,
		handlers: handlers,
		logger:   logger.With("supervisor", socket),
		opts:     opts,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go w.run(ctx)
	return w, nil
}

// Stop ends the connection and waits for the worker's goroutine, including
// any operation being served (their context is cancelled). It is safe to
// call more than once.
func (w *Worker) Stop() {
	w.cancel()
	<-w.done
}

// Wait waits until the worker has stopped (its context ended or Stop).
func (w *Worker) Wait() { <-w.done }

// Done is closed when the worker has stopped.
func (w *Worker) Done() <-chan struct{} { return w.done }

// ConnectionID returns the id the supervisor gave the current registration,
// or "" while not registered.
func (w *Worker) ConnectionID() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.connectionID
}

// State returns a copy of the state the worker registers with.
func (w *Worker) State() map[string]any {
	s := make(map[string]any, len(w.state))
	for k, v := range w.state {
		s[k] = v
	}
	return s
}

func (w *Worker) setConnectionID(id string) {
	w.mu.Lock()
	w.connectionID = id
	w.mu.Unlock()
}

// run is the worker's goroutine: connect, serve, pause, again.
func (w *Worker) run(ctx context.Context) {
	defer close(w.done)
	failures := 0
	for {
		registered, err := w.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if registered {
			failures = 0
			w.logger.Warn("supervisor connection lost; reconnecting", "error", err)
		} else if failures == 0 {
			w.logger.Warn("cannot reach supervisor; retrying", "error", err)
		} else {
			w.logger.Debug("cannot reach supervisor; retrying", "error", err, "attempt", failures+1)
		}
		pause := reconnectPause(failures, w.opts.MinPause, w.opts.MaxPause, rand.Float64())
		failures++
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session dials, registers and serves one connection until it ends. It
// reports whether the registration succeeded.
func (w *Worker) session(ctx context.Context) (bool, error) {
	dctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	var d net.Dialer
	nc, err := d.DialContext(dctx, "unix", w.socket)
	cancel()
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	conn := rpc.NewConn(nc, rpc.Options{Handlers: w.handlers, Logger: w.logger})
	ran := make(chan error, 1)
	go func() { ran <- conn.Run(ctx) }()

	rctx, cancel := context.WithTimeout(ctx, w.opts.RegisterTimeout)
	reply, err := conn.Call(rctx, "register", map[string]any{"state": w.state}, nil)
	cancel()
	if err == nil {
		if id, ok := reply.GetString("connection_id"); ok && id != "" {
			w.setConnectionID(id)
		} else {
			err = fmt.Errorf("reply has no connection_id: %s", reply)
		}
	}
	if err != nil {
		conn.Close()
		<-ran
		return false, fmt.Errorf("register: %w", err)
	}
	w.logger.Info("registered with supervisor", "connection_id", w.ConnectionID())
	if w.opts.OnRegister != nil {
		w.opts.OnRegister(w.ConnectionID())
	}
	err = <-ran
	w.setConnectionID("")
	if err == nil {
		err = errors.New("connection closed")
	}
	return true, err
}

// reconnectPause is the pause after the given number of consecutive failed
// attempts (0 for the first pause): min·2^failures capped at max, scaled by
// a jitter factor between 0.5 and 1 taken from r in [0, 1).
func reconnectPause(failures int, min, max time.Duration, r float64) time.Duration {
	d := min
	for i := 0; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return time.Duration(float64(d) * (0.5 + r/2))
}
