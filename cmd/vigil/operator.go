package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// operatorCommands returns the operator's subcommands (status, the
// lifecycle commands, forward, dump, probe, logs, top).
func operatorCommands() []*cobra.Command {
	return []*cobra.Command{
		newStatusCmd(),
		newStartCmd(),
		newStopCmd(),
		newRestartCmd(),
		newScaleCmd(),
		newReloadCmd(),
		newShutdownCmd(),
		newForwardCmd(),
		newDumpCmd(),
		newProbeCmd(),
		newLogsCmd(),
		newTopCmd(),
	}
}

// opOptions are the flags the operator's commands share.
type opOptions struct {
	socket  string
	config  string   // -c: the vigil.toml that names the socket
	output  string   // "table", "json" or "raw"; "" for commands that print no data
	outputs []string // the --output values the command takes
	timeout time.Duration
	flags   interface{ Changed(name string) bool } // the command's, to tell a flag given from its default
}

// addSocketFlag adds --socket, -c/--config and --timeout.
func (o *opOptions) addSocketFlag(cmd *cobra.Command, timeout time.Duration, timeoutHelp string) {
	o.flags = cmd.Flags()
	cmd.Flags().StringVar(&o.socket, "socket", "",
		"the supervisor's socket (default: $"+EnvSupervisorSocket+", else supervisor.socket of --config, else supervisor.ipc here)")
	cmd.Flags().StringVarP(&o.config, "config", "c", "",
		"the vigil.toml whose supervisor.socket to use (default: "+defaultConfig+" here, when there is one)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", timeout, timeoutHelp)
}

// resolveSocket chooses the socket, first found: --socket,
// $VIGIL_SUPERVISOR_SOCKET, supervisor.socket of the file -c names (which
// must exist), of ./vigil.toml when it exists, else ./supervisor.ipc. A
// file that is named but missing, or whose TOML cannot be read, is a
// usage error naming it (and its line).
func (o *opOptions) resolveSocket() error {
	if o.flags != nil && o.flags.Changed("socket") {
		if o.socket == "" {
			return usageErr("--socket: the path must not be empty")
		}
		return nil
	}
	if v := os.Getenv(EnvSupervisorSocket); v != "" {
		o.socket = v
		return nil
	}
	path, named := o.config, o.flags != nil && o.flags.Changed("config")
	if named && path == "" {
		return usageErr("--config: the path must not be empty")
	}
	if !named {
		path = defaultConfig
		if _, err := os.Stat(path); err != nil {
			o.socket = supervisor.DefaultSocket
			return nil
		}
	}
	socket, err := configSocket(path)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	o.socket = socket
	return nil
}

// addOutputFlag adds --output, which takes the given formats (the first
// is the default; none: table and json).
func (o *opOptions) addOutputFlag(cmd *cobra.Command, formats ...string) {
	if len(formats) == 0 {
		formats = []string{"table", "json"}
	}
	o.outputs = formats
	cmd.Flags().StringVar(&o.output, "output", formats[0], "output format: "+orList(formats))
}

// orList writes "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// check validates the shared flags and chooses the socket (see
// resolveSocket); its error is a usage error.
func (o *opOptions) check() error {
	if o.output != "" && !slices.Contains(o.outputs, o.output) {
		return usageErr("--output %q: expected %s", o.output, orList(o.outputs))
	}
	if err := o.resolveSocket(); err != nil {
		return err
	}
	if o.timeout < 0 {
		return usageErr("--timeout %v: must not be negative", o.timeout)
	}
	return nil
}

// withTimeout bounds ctx by --timeout (0: no bound).
func (o *opOptions) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, o.timeout)
}

// opError is an error whose message is written for a person; it still
// unwraps to its cause for errors.Is.
type opError struct {
	msg   string
	cause error
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.cause }

// usageErr is a usage error (exit 2).
func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// failed is an operation's failure (exit 1) with a message for a person.
func failed(cause error, format string, args ...any) error {
	return &exitError{code: exitFailed, err: &opError{msg: fmt.Sprintf(format, args...), cause: cause}}
}

// notFound is a name that matches no worker or service (exit 4).
func notFound(cause error, format string, args ...any) error {
	return &exitError{code: exitNotFound, err: &opError{msg: fmt.Sprintf(format, args...), cause: cause}}
}

// unreachable is a failure to reach the supervisor (exit 3).
func unreachable(cause error, format string, args ...any) error {
	return &exitError{code: exitUnreachable, err: &opError{msg: fmt.Sprintf(format, args...), cause: cause}}
}

// dial connects to the supervisor, turning its failures into the messages
// and exit codes an operator understands.
func (o *opOptions) dial(ctx context.Context) (*supervisor.Client, error) {
	c, err := supervisor.Dial(ctx, o.socket)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, supervisor.ErrNoSupervisor):
		return nil, unreachable(err, "no supervisor at %s: is `vigil run` running here? (--socket to choose)", o.socket)
	case errors.Is(err, supervisor.ErrRefused):
		return nil, unreachable(err, "%s", refusedMessage(o.socket))
	default:
		return nil, unreachable(err, "cannot reach the supervisor at %s: %v", o.socket, err)
	}
}

// refusedMessage explains a refused connection: who was refused, and where
// the allowed uids are set.
func refusedMessage(socket string) string {
	return fmt.Sprintf("permission denied: uid %d may not connect to the supervisor at %s "+
		"(it allows root, its own uid, and the uids and groups in supervisor.allow_uids / allow_groups of vigil.toml; "+
		"`vigil supervise` takes --allow-uid / --allow-gid)", os.Getuid(), socket)
}

// callError turns the failure of a call to the supervisor itself (status,
// restart) into an operator's error, naming the party that failed.
func (o *opOptions) callError(op string, err error) error {
	var remote *rpc.RemoteError
	switch {
	case errors.As(err, &remote) && remote.Class == "PermissionError":
		return failed(err, "%s: refused by the supervisor at %s: %s", op, o.socket, remote.Message)
	case errors.As(err, &remote):
		return failed(err, "%s: the supervisor at %s failed: %v", op, o.socket, remote)
	case errors.Is(err, errPartial):
		return unreachable(err, "%s: the supervisor at %s began to answer but did not finish within %v: one of its monitors or the controller is slow (--timeout to wait longer)", op, o.socket, o.timeout)
	case errors.Is(err, context.DeadlineExceeded):
		return unreachable(err, "%s: no answer from the supervisor at %s after %v (--timeout to wait longer)", op, o.socket, o.timeout)
	case errors.Is(err, rpc.ErrClosed):
		// The socket's permissions let us connect but the supervisor closed
		// the connection before it answered.
		return unreachable(err, "%s: the supervisor at %s closed the connection before answering: it may be stopping, at its connection limit "+
			"(supervisor.max_connections), or refusing uid %d (allowed: root, its own uid, and supervisor.allow_uids / allow_groups of vigil.toml); its log says which",
			op, o.socket, os.Getuid())
	default:
		return unreachable(err, "%s: %v", op, err)
	}
}

// errPartial is wrapped by callStatus's error when the supervisor sent part
// of its answer but not all before the deadline.
var errPartial = errors.New("partial answer")

// fetchStatus dials, asks for status and builds the view of it.
func (o *opOptions) fetchStatus(ctx context.Context) (*supervisor.Client, *statusview.View, error) {
	c, err := o.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	st, err := callStatus(ctx, c)
	if err != nil {
		c.Close()
		return nil, nil, o.callError("status", err)
	}
	return c, statusview.New(st), nil
}

// callStatus asks for the status, telling the supervisor the deadline so
// that it answers within it, naming a party (a monitor, the controller)
// that does not. It decodes nothing (statusview.New decodes only what the
// table needs, once), so it leaves Connections nil. A deadline that passes
// after part of the answer came is an error wrapping errPartial too.
func callStatus(ctx context.Context, c *supervisor.Client) (*supervisor.Status, error) {
	st := &supervisor.Status{}
	final, err := c.Conn().Call(ctx, "status", supervisor.StatusParams(ctx), func(m *rpc.Message) error {
		st.Parts = append(st.Parts, m)
		return nil
	})
	if err != nil {
		if len(st.Parts) > 0 && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", errPartial, err)
		}
		return nil, err
	}
	st.Final = final
	return st, nil
}
