package supervisor

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// throttleEvery is how often a warning that clients cause (bad input, a
// line too long or too slow, a refused connection) is logged at most, by
// message: a client that sends garbage, or connects again and again,
// cannot flood the log.
const throttleEvery = time.Second

// throttled returns a logger that logs each warning or error message at
// most once per throttleEvery; the next one logged says how many like it
// were left out ("similar_left_out"). Lower levels pass as they are.
func throttled(l *slog.Logger) *slog.Logger {
	return slog.New(&throttle{inner: l.Handler(), state: &throttleState{last: make(map[string]*lastLogged)}})
}

type throttle struct {
	inner slog.Handler
	state *throttleState // shared by the handlers derived with attributes
}

type throttleState struct {
	mu   sync.Mutex
	last map[string]*lastLogged // by message: a fixed set, from this code
}

type lastLogged struct {
	at      time.Time
	leftOut int
}

func (t *throttle) Enabled(ctx context.Context, level slog.Level) bool {
	return t.inner.Enabled(ctx, level)
}

func (t *throttle) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return t.inner.Handle(ctx, r)
	}
	s := t.state
	s.mu.Lock()
	l := s.last[r.Message]
	if l == nil {
		l = &lastLogged{}
		s.last[r.Message] = l
	}
	if !l.at.IsZero() && r.Time.Sub(l.at) < throttleEvery {
		l.leftOut++
		s.mu.Unlock()
		return nil
	}
	n := l.leftOut
	l.at, l.leftOut = r.Time, 0
	s.mu.Unlock()
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("similar_left_out", n))
	}
	return t.inner.Handle(ctx, r)
}

func (t *throttle) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &throttle{inner: t.inner.WithAttrs(attrs), state: t.state}
}

func (t *throttle) WithGroup(name string) slog.Handler {
	return &throttle{inner: t.inner.WithGroup(name), state: t.state}
}

// withPeerAttrs returns l with the peer's pid and uid added to each record
// as it is logged ("peer_pid", "peer_uid"): unlike Logger.With, nothing is
// formatted ahead, so a connection that logs nothing costs a few words.
func withPeerAttrs(l *slog.Logger, peer Credentials) *slog.Logger {
	return slog.New(&peerAttrs{inner: l.Handler(), pid: peer.PID, uid: peer.UID})
}

type peerAttrs struct {
	inner    slog.Handler
	pid, uid int
}

func (p *peerAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return p.inner.Enabled(ctx, level)
}

func (p *peerAttrs) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(slog.Int("peer_pid", p.pid), slog.Int("peer_uid", p.uid))
	return p.inner.Handle(ctx, r)
}

func (p *peerAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return p.inner.WithAttrs(append([]slog.Attr{slog.Int("peer_pid", p.pid), slog.Int("peer_uid", p.uid)}, attrs...))
}

func (p *peerAttrs) WithGroup(name string) slog.Handler {
	return p.inner.WithAttrs([]slog.Attr{slog.Int("peer_pid", p.pid), slog.Int("peer_uid", p.uid)}).WithGroup(name)
}
