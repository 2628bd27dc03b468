package supervisor

import (
	"errors"
	"log/slog"
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

// ErrRefused is wrapped by the error of [Dial] when the socket exists but
// the caller may not connect to it (file permissions).
var ErrRefused = errors.New("permission denied")

// Credentials are a connected peer's process, user and group ids, as the
// kernel reports them (SO_PEERCRED).
type Credentials struct {
	PID int `json:"pid"`
	UID int `json:"uid"`
	GID int `json:"gid"`
}

// ListenOptions says who may connect to the socket. The zero value allows
// root and the server's own user, with the file's mode 0600.
type ListenOptions struct {
	// Group, when not nil, is the gid that owns the socket file, whose mode
	// becomes 0660 so that the group's members can connect.
	Group *int
	// AllowUIDs and AllowGIDs are further users and groups whose processes
	// may connect (the peer's primary gid is checked).
	AllowUIDs []int
	AllowGIDs []int
	// Logger receives refusals; nil discards them.
	Logger *slog.Logger
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
		if c.GID == g {
			return true
		}
	}
	if o.Group != nil && c.GID == *o.Group {
		return true
	}
	return false
}
