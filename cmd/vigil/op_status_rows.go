package main

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/supervisor"
)

// statusRow is one worker in `vigil status --output json`: a schema that
// scripts can rely on. Every key is always present; null means unknown or
// none. Keys may be added, never renamed or removed.
type statusRow struct {
	// Service is the service's name ("" when the worker registered none).
	Service string `json:"service"`
	// Instance counts from 0 within the service; null for a worker that
	// registered no instance (the original's workers).
	Instance *int `json:"instance"`
	// Name is what names the worker on the command line (web.0, or the
	// name it registered); null when it registered none.
	Name *string `json:"name"`
	// PID is the process id; null when no process runs (backing off).
	PID *int `json:"pid"`
	// ConnectionID is its connection to the supervisor; null when it is not
	// connected (a program that knows nothing of vigil, or not yet).
	ConnectionID *string `json:"connection_id"`
	// State is the controller's state of the worker ("starting", "ready",
	// "unhealthy", "backing off", "stopping"), or "connected" for a
	// connection the controller does not know.
	State string `json:"state"`
	// Status is the last status text the worker sent, null when none or
	// when it names a state the worker is no longer in.
	Status *string `json:"status"`
	// Uptime is how long the current process has run, in seconds.
	Uptime *float64 `json:"uptime"`
	// Restarts counts the processes started for this instance after its
	// first.
	Restarts *int `json:"restarts"`
	// LastExit is how the previous process ended ("exit status 1",
	// "signal: killed").
	LastExit *string `json:"last_exit"`
	// LastError is the last error starting the instance.
	LastError *string `json:"last_error"`
	// NextRestart is when a backing-off worker starts again (RFC 3339), and
	// RestartIn the seconds until then (0 once due).
	NextRestart *string  `json:"next_restart"`
	RestartIn   *float64 `json:"restart_in"`
	// CPU is the percentage of one core, from the process monitor.
	CPU *float64 `json:"cpu"`
	// Memory is the worker's memory in bytes.
	Memory statusRowMemory `json:"memory"`
}

// statusRowMemory is a worker's memory in bytes.
type statusRowMemory struct {
	// Private is memory no other process shares (the memory monitor's
	// figure, else the process monitor's private clean + dirty).
	Private *int64 `json:"private"`
	// Resident is the resident set size.
	Resident *int64 `json:"resident"`
}

// rowOf builds a worker's row at now.
func rowOf(w *statusview.Worker, now time.Time) statusRow {
	r := statusRow{Service: w.Service, State: w.State}
	if w.Instance >= 0 {
		r.Instance = ptr(w.Instance)
	}
	if w.Service != "" {
		r.Name = ptr(w.Name())
	}
	if w.PID > 0 {
		r.PID = ptr(w.PID)
	}
	if w.ConnID != "" {
		r.ConnectionID = ptr(w.ConnID)
	}
	if w.Status != "" {
		r.Status = ptr(w.Status)
	}
	if w.Uptime >= 0 {
		r.Uptime = ptr(w.Uptime)
	}
	if w.Restarts >= 0 {
		r.Restarts = ptr(w.Restarts)
	}
	if w.LastExit != "" {
		r.LastExit = ptr(w.LastExit)
	}
	if w.LastError != "" {
		r.LastError = ptr(w.LastError)
	}
	if !w.NextRestart.IsZero() {
		r.NextRestart = ptr(w.NextRestart.UTC().Format(time.RFC3339Nano))
		r.RestartIn = ptr(max(w.NextRestart.Sub(now).Seconds(), 0))
	}
	if w.CPU >= 0 {
		r.CPU = ptr(w.CPU)
	}
	if w.Private >= 0 {
		r.Memory.Private = ptr(int64(w.Private))
	}
	if w.Resident >= 0 {
		r.Memory.Resident = ptr(int64(w.Resident))
	}
	return r
}

func ptr[T any](v T) *T { return &v }

// writeRows prints the rows as a JSON array, one row a line.
func writeRows(w io.Writer, v *statusview.View, now time.Time) error {
	var b bytes.Buffer
	b.WriteString("[")
	for i, wk := range v.Workers {
		line, err := json.Marshal(rowOf(wk, now))
		if err != nil {
			return err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
		b.Write(line)
	}
	b.WriteString("\n]\n")
	_, err := w.Write(b.Bytes())
	return err
}

// writeStatus writes one status answer in the --output format: "table"
// (and a line on the registrations the supervisor could not verify),
// "json" (rows) or "raw" (the supervisor's replies). With services, only
// their workers and totals are shown (not for raw); a name that is no
// service is an error that exits 4.
func writeStatus(w io.Writer, output string, st *supervisor.Status, services []string, colour bool, now time.Time) error {
	if output == "raw" {
		return writeRawReplies(w, st)
	}
	all := statusview.New(st)
	v := all
	if len(services) > 0 {
		var err error
		if v, err = onlyServices(v, services); err != nil {
			return err
		}
	}
	if output == "json" {
		return writeRows(w, v, now)
	}
	if err := renderStatus(w, v, colour, now); err != nil {
		return err
	}
	_, err := io.WriteString(w, unverifiedLine(all))
	return err
}

// onlyServices returns a copy of v with only the workers and totals of
// the named services.
func onlyServices(v *statusview.View, names []string) (*statusview.View, error) {
	var known []string
	for _, s := range v.Services {
		if s.Name != "" {
			known = append(known, s.Name)
		}
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			if len(known) == 0 {
				return nil, notFound(nil, "no service %s: no worker is registered with the supervisor", n)
			}
			return nil, notFound(nil, "no service %s: the services are %s", n, strings.Join(known, ", "))
		}
	}
	only := *v
	only.Workers, only.Services = nil, nil
	for _, w := range v.Workers {
		if slices.Contains(names, w.Service) {
			only.Workers = append(only.Workers, w)
		}
	}
	for _, s := range v.Services {
		if slices.Contains(names, s.Name) {
			only.Services = append(only.Services, s)
		}
	}
	only.Kills = nil // not said per service
	return &only, nil
}
