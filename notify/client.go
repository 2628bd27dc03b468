package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
)

// Environment variables read by New.
const (
	// EnvPipe names the file descriptor of a pipe to the parent.
	EnvPipe = "NOTIFY_PIPE"
	// EnvSocket names systemd's notification socket.
	EnvSocket = "NOTIFY_SOCKET"
	// EnvLog names a file to which JSON lines are appended.
	EnvLog = "NOTIFY_LOG"
	// EnvWatchdogUsec is systemd's watchdog interval in microseconds.
	EnvWatchdogUsec = "WATCHDOG_USEC"
	// EnvWatchdogPID is the pid systemd expects keep-alives from.
	EnvWatchdogPID = "WATCHDOG_PID"
)

// Errors that callers may test with errors.Is.
var (
	// ErrClosed is returned by Send after Close.
	ErrClosed = errors.New("notify: client closed")
	// ErrMessageTooLarge is returned when a systemd datagram would exceed
	// MaxDatagram bytes; nothing is sent.
	ErrMessageTooLarge = errors.New("notify: message too large")
	// ErrBadEnvironment is wrapped by New when a notify variable is set to
	// something unusable.
	ErrBadEnvironment = errors.New("notify: bad environment")
)

// Client sends readiness messages to whatever started this process. Every
// Client is safe for concurrent use. Send after Close returns ErrClosed;
// Close is idempotent.
type Client interface {
	// Send delivers one message.
	Send(Message) error
	// Close releases the client's resources.
	Close() error
}

// New chooses a client from the environment, read through getenv (nil means
// os.Getenv), in the original's order:
//
//   - NOTIFY_PIPE set: the decimal number of an open file descriptor (3 for
//     children of vigil), a pipe to the parent; each message is written as
//     one JSON line. The client owns the descriptor (Close closes it) and
//     marks it close-on-exec so grandchildren do not inherit it.
//   - NOTIFY_SOCKET set: systemd's socket, an absolute path or an abstract
//     name starting with '@'; each message is one datagram of KEY=VALUE
//     lines (see [EncodeSystemd]).
//   - NOTIFY_LOG set: a file path; each message is appended as a JSON line,
//     the file being opened (and created, mode 0644) for every message.
//   - none set: a client that logs each message at info level to logger
//     (nil logger: the messages go nowhere).
//
// A variable set to the empty string counts as unset. A variable set to an
// unusable value (not a number, a closed descriptor, a relative socket path)
// is an error wrapping ErrBadEnvironment: New never falls through to the
// next choice, so that a mistake is seen rather than silently logged.
//
// Only the systemd client sends bare Watchdog messages; the others ignore a
// message whose only content is Watchdog.
func New(getenv func(string) string, logger *slog.Logger) (Client, error) {
	c, err := fromEnv(getenv)
	if err != nil || c != nil {
		return c, err
	}
	return NewLogClient(logger), nil
}

// NewOrNop is New, except that with none of the variables set it returns a
// Nop client instead of the log client: for callers that want silence when
// nothing listens.
func NewOrNop(getenv func(string) string) (Client, error) {
	c, err := fromEnv(getenv)
	if err != nil || c != nil {
		return c, err
	}
	return Nop{}, nil
}

// fromEnv returns the client the environment names, nil if it names none,
// and never a typed nil with an error.
func fromEnv(getenv func(string) string) (Client, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var (
		c   Client
		err error
	)
	switch {
	case getenv(EnvPipe) != "":
		c, err = newPipeClient(getenv(EnvPipe))
	case getenv(EnvSocket) != "":
		c, err = untyped(NewSystemdClient(getenv(EnvSocket)))
	case getenv(EnvLog) != "":
		c, err = untyped(NewFileClient(getenv(EnvLog)))
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// untyped turns a constructor's concrete result into a Client, nil (not a
// typed nil) when it failed.
func untyped[C Client](c C, err error) (Client, error) {
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Nop is a Client that discards every message.
type Nop struct{}

// Send discards m and returns nil.
func (Nop) Send(Message) error { return nil }

// Close returns nil.
func (Nop) Close() error { return nil }

// String describes the client.
func (Nop) String() string { return "nop" }

// marshalLine encodes m as one JSON line ending in '\n'.
func marshalLine(m Message) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriterClient writes each message as one JSON line to an io.Writer, in a
// single Write call. It is the NOTIFY_PIPE client, and is useful for tests.
type WriterClient struct {
	mu     sync.Mutex
	w      io.Writer
	name   string
	closed bool
}

// NewWriterClient returns a client writing JSON lines to w. Close closes w
// if it is an io.Closer.
func NewWriterClient(w io.Writer) *WriterClient {
	return &WriterClient{w: w, name: "writer"}
}

func newPipeClient(v string) (Client, error) {
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("%w: %s=%q is not a file descriptor number", ErrBadEnvironment, EnvPipe, v)
	}
	if err := checkFD(fd); err != nil {
		return nil, fmt.Errorf("%w: %s=%d: %w", ErrBadEnvironment, EnvPipe, fd, err)
	}
	closeOnExec(fd)
	f := os.NewFile(uintptr(fd), "notify-pipe")
	return &WriterClient{w: f, name: "pipe fd " + v}, nil
}

// Send writes m as one JSON line. A bare Watchdog message is ignored.
func (c *WriterClient) Send(m Message) error {
	if m.onlyWatchdog() {
		return nil
	}
	line, err := marshalLine(m)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if _, err := c.w.Write(line); err != nil {
		return fmt.Errorf("notify: write to %s: %w", c.name, err)
	}
	return nil
}

// Close closes the underlying writer if it is an io.Closer.
func (c *WriterClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if cl, ok := c.w.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// String describes the client.
func (c *WriterClient) String() string { return c.name }

// FileClient appends each message as a JSON line to a file (NOTIFY_LOG),
// opening it for every message so that the file may be removed or rotated
// underneath.
type FileClient struct {
	mu     sync.Mutex
	path   string
	closed bool
}

// NewFileClient returns a client appending to path. It opens the file once
// (creating it, mode 0644) to report an unusable path at once.
func NewFileClient(path string) (*FileClient, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadEnvironment, EnvLog, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("notify: %s: %w", EnvLog, err)
	}
	return &FileClient{path: path}, nil
}

// Send appends m as one JSON line. A bare Watchdog message is ignored.
func (c *FileClient) Send(m Message) error {
	if m.onlyWatchdog() {
		return nil
	}
	line, err := marshalLine(m)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	_, werr := f.Write(line)
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("notify: %w", werr)
	}
	if cerr != nil {
		return fmt.Errorf("notify: %w", cerr)
	}
	return nil
}

// Close marks the client closed.
func (c *FileClient) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

// String describes the client.
func (c *FileClient) String() string { return "log file " + c.path }

// LogClient logs each message at info level. A bare Watchdog message is
// ignored.
type LogClient struct {
	logger *slog.Logger
}

// NewLogClient returns a client logging to logger; nil discards.
func NewLogClient(logger *slog.Logger) *LogClient {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &LogClient{logger: logger}
}

// Send logs m's non-zero fields as attributes of a "notify" record.
func (c *LogClient) Send(m Message) error {
	if m.onlyWatchdog() {
		return nil
	}
	c.logger.Info("notify", messageAttrs(m)...)
	return nil
}

// Close returns nil.
func (c *LogClient) Close() error { return nil }

// String describes the client.
func (c *LogClient) String() string { return "log" }

func messageAttrs(m Message) []any {
	var a []any
	if m.Ready != nil {
		a = append(a, slog.Bool("ready", *m.Ready))
	}
	if m.Healthy {
		a = append(a, slog.Bool("healthy", true))
	}
	if m.Reloading {
		a = append(a, slog.Bool("reloading", true))
	}
	if m.Restarting {
		a = append(a, slog.Bool("restarting", true))
	}
	if m.Stopping {
		a = append(a, slog.Bool("stopping", true))
	}
	if m.Status != "" {
		a = append(a, slog.String("status", m.Status))
	}
	if m.Errno != 0 {
		a = append(a, slog.Int("errno", m.Errno))
	}
	for _, k := range sortedKeys(m.Extra) {
		if !knownKeys[k] {
			a = append(a, slog.String(k, string(m.Extra[k])))
		}
	}
	return a
}
