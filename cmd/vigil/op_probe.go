package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/internal/statusview"
)

func newProbeCmd() *cobra.Command {
	var (
		o         opOptions
		notifyLog string
	)
	cmd := &cobra.Command{
		Use:   "probe ready|healthy",
		Short: "Exit 0 when vigil is ready (or healthy), 1 otherwise, with a one-line reason: for exec probes",
		Long: `For Kubernetes exec probes and scripts: exit 0 or 1 with a one-line reason
(3 when the supervisor cannot be reached; any non-zero code fails a probe).

  ready    every service has at least one ready worker (a service
           stopped with vigil stop or autostart = false left out); when
           not, the services that are not, and why: failed (its reason),
           or its workers' states (1 starting for 4m05s)
  healthy  the supervisor answers within --timeout (1s) and no worker is
           failing its health check

With --notify-log FILE, the probe reads the controller's NOTIFY_LOG file
(JSON lines) instead of asking the supervisor: ready when its last state
says ready; healthy unless its last message says it is stopping or failed.`,
		Example: `  vigil probe ready
  vigil probe healthy --notify-log /run/vigil/notify.log`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("expected ready or healthy, got %d arguments", len(args))
			}
			return nil
		},
		ValidArgs: []string{"ready", "healthy"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			kind := args[0]
			if kind != "ready" && kind != "healthy" {
				return usageErr("unknown probe %q: expected ready or healthy", kind)
			}
			if o.timeout <= 0 {
				return usageErr("--timeout %v: a probe needs a positive timeout", o.timeout)
			}
			usageDone(cmd)
			var reason string
			var err error
			if notifyLog != "" {
				reason, err = probeNotifyLog(notifyLog, kind)
			} else {
				reason, err = probeSocket(cmd.Context(), &o, kind)
			}
			if err != nil {
				// Not ready or not healthy: 1; no supervisor to ask: 3, as
				// for every command. Any non-zero code fails a probe.
				code := exitFailed
				if e := (*exitError)(nil); errors.As(err, &e) && e.code == exitUnreachable {
					code = exitUnreachable
				}
				return &exitError{code: code, err: err}
			}
			writeLine(cmd.OutOrStdout(), "%s", reason)
			return nil
		},
	}
	o.addSocketFlag(cmd, time.Second, "how long the supervisor may take to answer")
	cmd.Flags().StringVar(&notifyLog, "notify-log", "", "read the controller's NOTIFY_LOG file instead of the socket")
	return cmd
}

// probeSocket asks the supervisor; the error is the reason for failing.
func probeSocket(parent context.Context, o *opOptions, kind string) (string, error) {
	ctx, cancel := o.withTimeout(parent)
	defer cancel()
	c, v, err := o.fetchStatus(ctx)
	if err != nil {
		return "", fmt.Errorf("not %s: %w", kind, err)
	}
	c.Close()
	var controllerFailed string
	for _, w := range v.Warnings {
		if strings.HasPrefix(w, "controller") {
			controllerFailed = w
		}
	}
	if kind == "healthy" {
		if controllerFailed != "" {
			return "", fmt.Errorf("not healthy: %s", controllerFailed)
		}
		var failing []string
		for _, w := range v.Workers {
			if w.State == "unhealthy" {
				failing = append(failing, w.Describe())
			}
		}
		if len(failing) > 0 {
			return "", fmt.Errorf("not healthy: %s %s failing %s health check", listShort(failing),
				plural(len(failing), "is", "are"), plural(len(failing), "its", "their"))
		}
		if v.Controller == nil {
			return "healthy: the supervisor answers (no controller registered)", nil
		}
		return fmt.Sprintf("healthy: the supervisor answers and none of %d %s is failing its health check",
			len(v.Children), plural(len(v.Children), "worker", "workers")), nil
	}

	// ready
	switch {
	case v.Controller == nil:
		return "", fmt.Errorf("not ready: no controller is registered with the supervisor at %s", o.socket)
	case controllerFailed != "":
		return "", fmt.Errorf("not ready: %s", controllerFailed)
	case len(v.Children) == 0:
		return "", errors.New("not ready: the controller reports no workers")
	}
	return readiness(v.Children)
}

// readiness judges the controller's children: ready when every service
// has a ready worker. A service whose instances are all stopped (vigil
// stop, autostart = false) is left out, being meant not to run; the
// services that are not ready are named, with why: failed (and the
// reason), or the states of their workers and how long the oldest has
// been starting.
func readiness(children []statusview.Child) (string, error) {
	type count struct {
		total, ready, stopped int
		states                map[string]int
		failed                string  // the reason of the first failed instance
		starting              float64 // the longest a worker has been starting, in seconds
	}
	counts := make(map[string]*count)
	var names []string
	for _, ch := range children {
		c := counts[ch.Service]
		if c == nil {
			c = &count{states: make(map[string]int)}
			counts[ch.Service] = c
			names = append(names, ch.Service)
		}
		if ch.State == "stopped" {
			c.stopped++
			continue
		}
		c.total++
		c.states[ch.State]++
		switch ch.State {
		case "ready":
			c.ready++
		case "failed":
			if c.failed == "" {
				c.failed = ch.LastError
				if c.failed == "" {
					c.failed = "no reason given"
				}
			}
		case "starting":
			if ch.Uptime != nil {
				c.starting = max(c.starting, *ch.Uptime)
			}
		}
	}
	slices.Sort(names)
	var missing, ok, stopped []string
	for _, n := range names {
		c := counts[n]
		switch {
		case c.total == 0:
			stopped = append(stopped, n)
		case c.ready == 0:
			var states []string
			for s, k := range c.states {
				st := fmt.Sprintf("%d %s", k, s)
				if s == "starting" && c.starting >= 1 {
					st += " for " + statusview.FormatUptime(c.starting)
				}
				states = append(states, st)
			}
			slices.Sort(states)
			why := fmt.Sprintf("%s has no ready worker (%s)", n, strings.Join(states, ", "))
			switch {
			case c.failed != "" && len(c.states) == 1:
				why = fmt.Sprintf("%s failed: %s; vigil start %s retries", n, c.failed, n)
			case c.failed != "":
				why = fmt.Sprintf("%s failed (%s): %s; vigil start %s retries", n, strings.Join(states, ", "), c.failed, n)
			}
			missing = append(missing, why)
		default:
			ok = append(ok, fmt.Sprintf("%s %d/%d", n, c.ready, c.total))
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("not ready: %s", strings.Join(missing, "; "))
	}
	if len(ok) == 0 {
		return "", fmt.Errorf("not ready: every service is stopped (%s)", strings.Join(stopped, ", "))
	}
	msg := "ready: " + strings.Join(ok, ", ")
	if len(stopped) > 0 {
		msg += " (stopped: " + strings.Join(stopped, ", ") + ")"
	}
	return msg, nil
}

func listShort(items []string) string {
	if len(items) > 5 {
		return strings.Join(items[:5], ", ") + fmt.Sprintf(" and %d more", len(items)-5)
	}
	return strings.Join(items, ", ")
}

// notifyState is what a NOTIFY_LOG file says, folded over its lines.
type notifyState struct {
	ready    bool
	stopping bool
	errored  string // the last message's status when it carries an errno
	status   string // the last status text
	lines    int
}

// readNotifyLog folds the JSON lines of a NOTIFY_LOG file; lines that are
// not JSON objects are skipped.
func readNotifyLog(r io.Reader) (notifyState, error) {
	var st notifyState
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		var m struct {
			Ready     *bool  `json:"ready"`
			Stopping  bool   `json:"stopping"`
			Reloading bool   `json:"reloading"`
			Status    string `json:"status"`
			Errno     int    `json:"errno"`
		}
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &m) != nil {
			continue
		}
		st.lines++
		if m.Ready != nil {
			st.ready = *m.Ready
			if st.ready {
				st.stopping = false
			}
		}
		if m.Stopping {
			st.stopping = true
		}
		st.errored = ""
		if m.Errno != 0 {
			st.errored = m.Status
			if st.errored == "" {
				st.errored = fmt.Sprintf("errno %d", m.Errno)
			}
		}
		if m.Status != "" {
			st.status = m.Status
		}
	}
	return st, sc.Err()
}

// probeNotifyLog judges from the controller's NOTIFY_LOG file.
func probeNotifyLog(path, kind string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("not %s: no notify log at %s yet (is `vigil run` started with NOTIFY_LOG=%s?)", kind, path, path)
	}
	if err != nil {
		return "", fmt.Errorf("not %s: %w", kind, err)
	}
	defer f.Close()
	st, err := readNotifyLog(f)
	if err != nil {
		return "", fmt.Errorf("not %s: reading %s: %w", kind, path, err)
	}
	said := ""
	if st.status != "" {
		said = fmt.Sprintf(" (%q)", st.status)
	}
	switch {
	case st.lines == 0:
		return "", fmt.Errorf("not %s: %s has no message yet", kind, path)
	case st.stopping:
		return "", fmt.Errorf("not %s: the controller is stopping%s", kind, said)
	case kind == "healthy" && st.errored != "":
		return "", fmt.Errorf("not healthy: the controller's last message is an error: %s", st.errored)
	case kind == "healthy":
		return "healthy: the controller's last message is not an error" + said, nil
	case !st.ready:
		return "", fmt.Errorf("not ready: the controller has not said it is ready%s", said)
	default:
		return "ready: the controller says it is ready" + said, nil
	}
}
