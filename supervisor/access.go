package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/vigild/vigil/rpc"
)

// Role is what a caller may do with the supervisor beyond registering,
// which every peer that may connect can do.
type Role string

// The roles. Root and the socket's owner have all three.
const (
	// RoleRead: status (and so probe), and forwarding "children" or "logs"
	// to the controller.
	RoleRead Role = "read"
	// RoleControl: restart (a signal to the controller), and forwarding to
	// the controller any other operation (restart_children, start, stop,
	// scale, reload).
	RoleControl Role = "control"
	// RoleDiagnostics: forwarding any operation to a worker (the dumps).
	RoleDiagnostics Role = "diagnostics"
)

// key is the [supervisor] key that grants the role.
func (r Role) key() string {
	switch r {
	case RoleControl:
		return "supervisor.operators"
	case RoleDiagnostics:
		return "supervisor.diagnosers"
	default:
		return "supervisor.readers"
	}
}

// Principals are users and groups: a peer is among them when its uid is
// one of UIDs, or its primary or a supplementary group one of GIDs.
type Principals struct {
	// UIDs are user ids.
	UIDs []int
	// GIDs are group ids.
	GIDs []int
}

func (p *Principals) has(c Credentials) bool {
	if p == nil || c.UID < 0 {
		return false
	}
	if slices.Contains(p.UIDs, c.UID) {
		return true
	}
	return slices.ContainsFunc(p.GIDs, c.inGroup)
}

// Access says who has which [Role]. Root and the socket's owner (the
// server's own user, and the owner of the socket file) have every role;
// operators and diagnosers can read too. The zero value lets every peer
// that may connect read, and no one else control or diagnose.
type Access struct {
	// Readers have RoleRead; nil means every peer that may connect.
	Readers *Principals
	// Operators have RoleControl.
	Operators Principals
	// Diagnosers have RoleDiagnostics.
	Diagnosers Principals
}

// allows reports whether a peer has a role; owners are the uids that have
// them all besides root.
func (a *Access) allows(c Credentials, r Role, owners []int) bool {
	if c.UID == 0 || (c.UID > 0 && slices.Contains(owners, c.UID)) {
		return true
	}
	switch r {
	case RoleRead:
		return a.Readers == nil || a.Readers.has(c) || a.Operators.has(c) || a.Diagnosers.has(c)
	case RoleControl:
		return a.Operators.has(c)
	case RoleDiagnostics:
		return a.Diagnosers.has(c)
	}
	return false
}

// peerKey is the key of a call's peer in its context.
type peerKey struct{}

// withPeer returns ctx carrying the credentials of the peer whose calls
// are served under it.
func withPeer(ctx context.Context, peer Credentials) context.Context {
	return context.WithValue(ctx, peerKey{}, peer)
}

// peerOf returns the credentials of the peer of the call served under ctx;
// a peer whose credentials are unknown has pid 0 and uid and gid -1.
func peerOf(ctx context.Context) Credentials {
	if p, ok := ctx.Value(peerKey{}).(Credentials); ok {
		return p
	}
	return unknownPeer
}

// unknownPeer stands for a peer the transport gave no credentials for: no
// pid, and a uid that matches no one (not root).
var unknownPeer = Credentials{UID: -1, GID: -1}

// authorize checks that the call's peer has the role. For control and
// diagnostics it logs an audit line, refused or not, with the caller's uid
// and pid and the attributes given. A refusal is an error that names the
// role needed and the key that grants it.
func (s *Server) authorize(ctx context.Context, call *rpc.Call, r Role, attrs ...slog.Attr) error {
	peer := peerOf(ctx)
	ok := s.Access.allows(peer, r, s.owners)
	if r != RoleRead && s.logger.Enabled(ctx, slog.LevelInfo) {
		line := make([]slog.Attr, 0, 5+len(attrs))
		line = append(line, slog.String("operation", call.Operation()), slog.String("role", string(r)),
			slog.Bool("allowed", ok), slog.Int("uid", peer.UID), slog.Int("pid", peer.PID))
		s.logger.LogAttrs(ctx, slog.LevelInfo, "audit", append(line, attrs...)...)
	}
	if ok {
		return nil
	}
	return rpc.Errorf("PermissionError", "%s needs the role %q, which uid %d (pid %d) does not have: see %s",
		call.Operation(), r, peer.UID, peer.PID, r.key())
}

// logName returns s for a log line when it is a plain name (an operation,
// a service), and otherwise only its length: what clients send may carry
// secrets.
func logName(s string) string {
	ok := len(s) <= 64
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':'
	}
	if ok {
		return s
	}
	return fmt.Sprintf("(%d bytes)", len(s))
}
