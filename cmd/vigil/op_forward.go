package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

func newForwardCmd() *cobra.Command {
	var o opOptions
	cmd := &cobra.Command{
		Use:   "forward WORKER OPERATION [key=value ...]",
		Short: "Call any operation on a worker; print its replies as JSON lines as they stream",
		Long: `Call OPERATION on a worker through the supervisor, with the given
parameters, and print each reply as a JSON line as it arrives. A value is
taken as JSON when it parses as JSON (duration=5, gc=true, tags=["a"]), and
as a string otherwise (path=/tmp/x.pprof).

` + workerHelp,
		Example: `  vigil forward web.0 thread_dump
  vigil forward 12345 memory_sample duration=10
  vigil forward 3f2a memory_dump format=text gc=true`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			op := args[1]
			if op == "" {
				return usageErr("OPERATION must not be empty")
			}
			params, err := parseParams(args[2:])
			if err != nil {
				return err
			}
			usageDone(cmd)
			ctx, cancel := o.withTimeout(cmd.Context())
			defer cancel()
			c, v, err := o.fetchStatus(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			target, err := resolveWorker(v, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			print := func(m *rpc.Message) error {
				b := withoutID(m)
				_, err := out.Write(append(b, '\n'))
				return err
			}
			reply, err := o.forward(ctx, c, target, op, params, print)
			if reply != nil {
				print(reply)
			}
			return err
		},
	}
	cmd.ValidArgsFunction = completeWorkers(&o, 0, false, nil)
	o.addSocketFlag(cmd, time.Minute, "how long to wait for the operation's final reply (0: no limit)")
	return cmd
}

// parseParams parses key=value arguments: a value that is valid JSON is
// taken as such, anything else as a string.
func parseParams(args []string) (map[string]any, error) {
	params := make(map[string]any, len(args)+1)
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, usageErr("parameter %q: expected key=value", a)
		}
		if k == "do" {
			return nil, usageErr("parameter %q: the operation is the second argument, not a do= parameter", a)
		}
		if _, dup := params[k]; dup {
			return nil, usageErr("parameter %q: %s is given twice", a, k)
		}
		if json.Valid([]byte(v)) {
			params[k] = json.RawMessage(v)
		} else {
			params[k] = v
		}
	}
	return params, nil
}

// forward calls op on target and turns its failures into messages a person
// understands. On a failed reply, the reply is returned with the error.
func (o *opOptions) forward(ctx context.Context, c *supervisor.Client, target *statusview.Worker, op string, params map[string]any, onReply func(*rpc.Message) error) (*rpc.Message, error) {
	if target.ConnID == "" {
		return nil, failed(nil, "%s is not connected to the supervisor (state: %s): it cannot serve %s", target.Describe(), target.State, op)
	}
	if params == nil {
		params = map[string]any{}
	}
	params["do"] = op
	start := time.Now()
	reply, err := c.Forward(ctx, target.ConnID, params, onReply)
	if err == nil {
		return reply, nil
	}
	return replyOf(err), o.forwardError(target, op, err, time.Since(start))
}

func replyOf(err error) *rpc.Message {
	var remote *rpc.RemoteError
	if errors.As(err, &remote) {
		return remote.Reply
	}
	return nil
}

// forwardError explains why a forwarded operation failed.
func (o *opOptions) forwardError(target *statusview.Worker, op string, err error, elapsed time.Duration) error {
	var remote *rpc.RemoteError
	if errors.As(err, &remote) {
		switch {
		case remote.Class == "NoMethodError":
			return failed(err, "%s does not serve %q (%s: %s)", target.Describe(), op, remote.Class, remote.Message)
		case remote.Class == "" && strings.HasPrefix(remote.Message, "Forwarded ") && strings.Contains(remote.Message, "timed out"):
			return o.timeoutError(target, op, err, elapsed)
		case remote.Class == "" && remote.Message == "Connection not found":
			return failed(err, "%s is no longer registered with the supervisor (it exited or disconnected): see vigil status", target.Describe())
		case remote.Class == "" && strings.HasPrefix(remote.Message, "Connection closed"):
			return failed(err, "%s went away before answering %s (it exited or disconnected)", target.Describe(), op)
		default:
			return failed(err, "%s on %s failed: %v", op, target.Describe(), remote)
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return o.timeoutError(target, op, err, elapsed)
	case errors.Is(err, context.Canceled):
		return failed(err, "%s on %s: interrupted", op, target.Describe())
	case errors.Is(err, rpc.ErrClosed):
		return unreachable(err, "%s on %s: the supervisor at %s closed the connection", op, target.Describe(), o.socket)
	default:
		return failed(err, "%s on %s: %v", op, target.Describe(), err)
	}
}

func (o *opOptions) timeoutError(target *statusview.Worker, op string, err error, elapsed time.Duration) error {
	after := o.timeout
	if after <= 0 {
		after = elapsed.Round(time.Millisecond)
	}
	return failed(err, "%s on %s timed out after %v (--timeout to wait longer)", op, target.Describe(), after)
}

// writeLine writes s and a newline.
func writeLine(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format+"\n", args...)
}
