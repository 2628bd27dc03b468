package supervisor

import (
	"errors"
	"log/slog"
	"time"
)

// DefaultSocket is the socket's file name when none is given: the
// original's name, in the working directory.
const DefaultSocket = "supervisor.ipc"

// ErrSupervisorRunning is returned by [Listen] when a live supervisor
// already answers on the socket path.
var ErrSupervisorRunning = errors.New("a supervisor is already listening")

// ErrNoSupervisor is wrapped by the error of [Dial] when nothing listens on
// the path (no socket file, or a stale one).
var ErrNoSupervisor = errors.New("no supervisor")

// ErrNotListening is wrapped by the error of [FileListener] for a file that
// is not a listening Unix stream socket.
var ErrNotListening = errors.New("not a listening Unix stream socket")

// DefaultHealInterval is how long after a change a [Listener] checks that
// its socket file is still there (or how often, where it cannot watch the
// directory) unless ListenOptions.HealInterval says otherwise.
const DefaultHealInterval = 5 * time.Second

// ErrRefused is wrapped by the error of [Dial] when the socket exists but
// the caller may not connect to it (file permissions).
var ErrRefused = errors.New("permission denied")

// Credentials are a connected peer's process, user and group ids, as the
// kernel reports them (SO_PEERCRED).
type Credentials struct {
	// PID is the peer's process id.
	PID int `json:"pid"`
	// UID is the peer's user id.
	UID int `json:"uid"`
	// GID is the peer's primary group id.
	GID int `json:"gid"`
	// Groups are the peer's supplementary group ids (SO_PEERGROUPS).
	Groups []int `json:"groups,omitempty"`
}

// inGroup reports whether the peer's primary or a supplementary group is
// gid.
func (c Credentials) inGroup(gid int) bool {
	if c.GID == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// ListenOptions says who may connect to the socket. The zero value allows
// root and the server's own user, with the file's mode 0600.
type ListenOptions struct {
	// Group, when not nil, is the gid that owns the socket file, whose mode
	// becomes 0660 so that the group's members can connect.
	Group *int
	// AllowUIDs are further users whose processes may connect.
	AllowUIDs []int
	// AllowGIDs are further groups whose members may connect (primary or
	// supplementary groups).
	AllowGIDs []int
	// Logger receives refusals and healings; nil discards them.
	Logger *slog.Logger
	// HealInterval is how long after a change to the socket file's entry
	// it is checked, and bound again when it is gone; where the directory
	// cannot be watched, how often it is checked (default
	// DefaultHealInterval; negative: never).
	HealInterval time.Duration
}

// allowed reports whether a peer may connect: root, the server's own uid,
// and the configured uids and gids.
func (o ListenOptions) allowed(c Credentials, self int) bool {
	if c.UID == 0 || c.UID == self {
		return true
	}
	for _, u := range o.AllowUIDs {
		if c.UID == u {
			return true
		}
	}
	for _, g := range o.AllowGIDs {
		if c.inGroup(g) {
			return true
		}
	}
	return o.Group != nil && c.inGroup(*o.Group)
}

// mode is the socket file's mode: 0600 by default, 0660 for a group, and
// 0666 when further users or groups are allowed, since connecting needs
// write permission on the file: the peer-credential check of every
// accepted connection is then the gate.
func (o ListenOptions) mode() uint32 {
	switch {
	case len(o.AllowUIDs) > 0 || len(o.AllowGIDs) > 0:
		return 0o666
	case o.Group != nil:
		return 0o660
	default:
		return 0o600
	}
}
