package control

import (
	"context"
	"fmt"
	"time"

	"github.com/vigild/vigil/logs"
	"github.com/vigild/vigil/rpc"
)

// Limits of the logs operation.
const (
	// LogsBatch is the most lines in one intermediate reply.
	LogsBatch = 500
	// LogsFollowFor is how long a follow call lasts at most.
	LogsFollowFor = 30 * time.Second
)

// logsParams are the parameters of a logs call.
type logsParams struct {
	Service   string   `json:"service"`
	Instance  *int     `json:"instance"`
	Stream    string   `json:"stream"`
	N         int      `json:"n"`
	Since     string   `json:"since"`
	Previous  bool     `json:"previous"`
	After     uint64   `json:"after"`
	Follow    bool     `json:"follow"`
	FollowFor *float64 `json:"follow_for"`
}

// LogLine is one line on the wire.
type LogLine struct {
	// Time is when the controller read the line.
	Time time.Time `json:"time"`
	// Service, Instance and PID name the process that wrote it.
	Service  string `json:"service"`
	Instance int    `json:"instance"`
	PID      int    `json:"pid"`
	// Stream is "stdout" or "stderr".
	Stream string `json:"stream"`
	// Line is the text, without its newline.
	Line string `json:"line"`
}

// Logs returns the handler of the "logs" operation over hub's lines.
func Logs(hub *logs.Hub) rpc.Handler {
	return func(ctx context.Context, call *rpc.Call) error {
		var p logsParams
		if err := call.Message().Decode(&p); err != nil {
			return rpc.ArgumentError("logs: %v", err)
		}
		q, followFor, err := p.query()
		if err != nil {
			return rpc.ArgumentError("logs: %v", err)
		}
		if !p.Follow {
			lines := hub.Lines(q)
			if err := sendLines(call, lines); err != nil {
				return err
			}
			cursor := hub.Seq()
			if len(lines) > 0 {
				cursor = max(cursor, lines[len(lines)-1].Seq)
			}
			return call.Finish(map[string]any{"cursor": cursor})
		}
		return follow(ctx, call, hub, q, followFor)
	}
}

// query checks the parameters and makes the query.
func (p *logsParams) query() (logs.Query, time.Duration, error) {
	q := logs.Query{Service: p.Service, Instance: p.Instance, N: p.N, Previous: p.Previous, After: p.After}
	var err error
	if q.Stream, err = logs.ParseStream(p.Stream); err != nil {
		return q, 0, fmt.Errorf("'stream': %w", err)
	}
	if p.Instance != nil && *p.Instance < 0 {
		return q, 0, fmt.Errorf("'instance' must be 0 or more, not %d", *p.Instance)
	}
	if p.Instance != nil && p.Service == "" {
		return q, 0, fmt.Errorf("'instance' needs 'service'")
	}
	if p.N < 0 {
		return q, 0, fmt.Errorf("'n' must be 0 or more, not %d", p.N)
	}
	if p.Since != "" {
		if q.Since, err = time.Parse(time.RFC3339Nano, p.Since); err != nil {
			return q, 0, fmt.Errorf("'since' must be an RFC 3339 time: %w", err)
		}
	}
	if p.Previous && p.Follow {
		return q, 0, fmt.Errorf("'previous' and 'follow' together: the previous process has exited, there is nothing to follow")
	}
	followFor := LogsFollowFor
	if p.FollowFor != nil {
		if *p.FollowFor <= 0 {
			return q, 0, fmt.Errorf("'follow_for' must be a positive number of seconds, not %v", *p.FollowFor)
		}
		followFor = min(followFor, time.Duration(*p.FollowFor*float64(time.Second)))
	}
	return q, followFor, nil
}

// follow streams the kept lines, then the new ones for followFor.
func follow(ctx context.Context, call *rpc.Call, hub *logs.Hub, q logs.Query, followFor time.Duration) error {
	sub := hub.Follow(q, 0)
	defer sub.Close()
	ctx, cancel := context.WithTimeout(ctx, followFor)
	defer cancel()
	cursor := q.After
	if cursor == 0 {
		cursor = hub.Seq() // nothing kept is newer, when nothing comes
	}
	for {
		lines, lost, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil { // the call's time is up (or its caller gone)
				return call.Finish(map[string]any{"cursor": cursor})
			}
			return err
		}
		if err := sendLines(call, lines); err != nil {
			return err
		}
		if len(lines) > 0 {
			cursor = max(cursor, lines[len(lines)-1].Seq)
		}
		if lost > 0 {
			if err := call.Reply(map[string]uint64{"lost": lost}); err != nil {
				return err
			}
		}
	}
}

// sendLines sends lines in intermediate replies of up to LogsBatch.
func sendLines(call *rpc.Call, lines []logs.Line) error {
	batch := make([]LogLine, 0, min(len(lines), LogsBatch))
	for i, l := range lines {
		batch = append(batch, LogLine{
			Time: l.Time.UTC(), Service: l.Service, Instance: l.Instance, PID: l.PID,
			Stream: l.Stream.String(), Line: string(l.Text),
		})
		if len(batch) == LogsBatch || i == len(lines)-1 {
			if err := call.Reply(map[string]any{"lines": batch}); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}
