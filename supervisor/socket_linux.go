//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Listener is the supervisor's Unix socket. Its Accept checks each peer's
// credentials and refuses, with a log line naming pid and uid, anyone who
// may not connect; the connections it returns report their peer's
// [Credentials]. Close removes the socket file.
type Listener struct {
	l      *net.UnixListener
	path   string
	ino    uint64
	opts   ListenOptions
	logger *slog.Logger
	self   int
	once   sync.Once
}

// Listen creates the socket at path with mode 0600 (0660 and the given
// group when ListenOptions.Group is set; 0666 when further users or groups
// are allowed, which each accepted connection's credentials are then
// checked against). A socket file already there is
// replaced only when nothing answers on it; when a live supervisor answers,
// the error wraps [ErrSupervisorRunning]. A file that is not a socket is
// never removed: that is an error too.
func Listen(path string, opts ListenOptions) (*Listener, error) {
	if path == "" {
		path = DefaultSocket
	}
	if err := clearStale(path); err != nil {
		return nil, err
	}
	// Bind in a private directory and rename into place, so that the socket
	// is never reachable with looser permissions than asked.
	dir, err := os.MkdirTemp(filepath.Dir(path), ".vigil-socket-")
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	mode := os.FileMode(opts.mode())
	if opts.Group != nil {
		if err := os.Chown(tmp, -1, *opts.Group); err != nil {
			l.Close()
			return nil, fmt.Errorf("listen %s: socket group %d: %w", path, *opts.Group, err)
		}
	}
	if err := os.Chmod(tmp, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	// Never replace a socket another supervisor created meanwhile.
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		if err = clearStale(path); err == nil {
			err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
		}
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{l: l, path: path, ino: st.Ino, opts: opts, logger: logger, self: os.Getuid()}, nil
}

// clearStale removes a socket file that nobody answers on.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("listen %s: the file exists and is not a socket: not removing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("listen %s: %w", path, ErrSupervisorRunning)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("listen %s: checking the existing socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listen %s: removing the stale socket: %w", path, err)
	}
	return nil
}

// Path returns the socket file's path.
func (l *Listener) Path() string { return l.path }

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Accept returns the next connection from a peer that may connect.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		cred, err := peerCredentials(c)
		if err != nil {
			l.logger.Warn("refused connection: no peer credentials", "error", err)
			c.Close()
			continue
		}
		if !l.opts.allowed(cred, l.self) {
			l.logger.Warn("refused connection", "pid", cred.PID, "uid", cred.UID, "gid", cred.GID,
				"reason", "uid not allowed (allowed: root, the supervisor's uid, and supervisor.allow_uids / allow_groups)")
			c.Close()
			continue
		}
		return &PeerConn{UnixConn: c, cred: cred}, nil
	}
}

// Close stops listening and removes the socket file, if it is still the
// one Listen created.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		err = l.l.Close()
		var st unix.Stat_t
		if unix.Stat(l.path, &st) == nil && st.Ino == l.ino {
			_ = os.Remove(l.path)
		}
	})
	return err
}

// PeerConn is an accepted connection with its peer's credentials.
type PeerConn struct {
	*net.UnixConn
	cred Credentials
}

// Credentials returns the peer's credentials.
func (c *PeerConn) Credentials() Credentials { return c.cred }

func peerCredentials(c *net.UnixConn) (Credentials, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Credentials{}, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Credentials{}, err
	}
	if serr != nil {
		return Credentials{}, serr
	}
	creds := Credentials{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}
	if err := raw.Control(func(fd uintptr) { creds.Groups = peerGroups(int(fd)) }); err != nil {
		return Credentials{}, err
	}
	return creds, nil
}

// peerGroups returns the peer's supplementary groups (SO_PEERGROUPS,
// Linux 4.13), or nil when the kernel does not say.
func peerGroups(fd int) []int {
	buf := make([]uint32, 64)
	for {
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno == unix.ERANGE && int(size/4) > len(buf) {
			buf = make([]uint32, size/4)
			continue
		}
		if errno != 0 {
			return nil
		}
		groups := make([]int, size/4)
		for i := range groups {
			groups[i] = int(buf[i])
		}
		return groups
	}
}

// dialSocket connects to the socket at path, telling apart a missing
// supervisor and a refusal.
func dialSocket(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("%w at %s: %w", ErrNoSupervisor, path, err)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%w: connecting to %s as uid %d: %w", ErrRefused, path, os.Getuid(), err)
	default:
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
}
