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
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Listener is the supervisor's Unix socket. Its Accept checks each peer's
// credentials and refuses, with a log line naming pid and uid, anyone who
// may not connect; the connections it returns report their peer's
// [Credentials].
//
// It heals: when its file's entry in the directory changes (an inotify
// watch, or every ListenOptions.HealInterval where none can be set), it
// checks, ListenOptions.HealInterval later, that the file at its path is
// still its socket, and when the file is gone, or is now another (dead)
// socket, it binds the path again, logging it once. Close removes the
// socket file if the listener created it.
type Listener struct {
	path   string
	opts   ListenOptions
	logger *slog.Logger
	self   int

	mu      sync.Mutex
	l       *net.UnixListener
	file    fileID // the socket file at path that is ours; zero: none
	owned   bool   // created by this listener: Close removes it
	owner   int    // the socket file's owner uid
	closed  bool
	problem string        // the healing problem last logged, so as to log each once
	checks  atomic.Uint64 // checks of the socket file made so far

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// fileID identifies a file: its device and inode.
type fileID struct{ dev, ino uint64 }

// statID returns the identity of the socket file at path, and its owner;
// the zero fileID when there is none.
func statID(path string) (fileID, int) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fileID{}, -1
	}
	return fileID{dev: st.Dev, ino: st.Ino}, int(st.Uid)
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
	ul, id, err := bind(path, opts)
	if err != nil {
		return nil, err
	}
	return newListener(ul, path, id, os.Geteuid(), true, opts), nil
}

// FileListener returns a Listener over an inherited listening socket, f,
// bound at path: the way a supervisor started by `vigil run` takes the
// socket its controller bound once for every supervisor it starts. The
// same guards apply as for [Listen] (opts), and the same healing. f is not
// closed (the listener has its own descriptor), and Close leaves the
// socket file to whoever created it, unless the listener bound it again
// itself. An f that is not a listening Unix stream socket is an error
// wrapping [ErrNotListening] that says what it is.
func FileListener(f *os.File, path string, opts ListenOptions) (*Listener, error) {
	if path == "" {
		path = DefaultSocket
	}
	if err := checkListening(f); err != nil {
		return nil, fmt.Errorf("inherited fd %d (for %s): %w", f.Fd(), path, err)
	}
	fl, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("inherited fd %d (for %s): %w", f.Fd(), path, err)
	}
	ul, ok := fl.(*net.UnixListener)
	if !ok {
		fl.Close()
		return nil, fmt.Errorf("inherited fd %d (for %s): %w: a %T", f.Fd(), path, ErrNotListening, fl)
	}
	ul.SetUnlinkOnClose(false)
	id, owner := statID(path)
	if owner < 0 {
		owner = os.Geteuid()
	}
	return newListener(ul, path, id, owner, false, opts), nil
}

// checkListening checks that f is a listening Unix stream socket.
func checkListening(f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var domain, typ, listening int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		if domain, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN); serr != nil {
			return
		}
		if typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE); serr != nil {
			return
		}
		listening, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	}); err != nil {
		return err
	}
	switch {
	case errors.Is(serr, unix.ENOTSOCK):
		return fmt.Errorf("%w: it is not a socket", ErrNotListening)
	case serr != nil:
		return fmt.Errorf("%w: %w", ErrNotListening, serr)
	case domain != unix.AF_UNIX:
		return fmt.Errorf("%w: it is a socket of address family %d, not a Unix socket", ErrNotListening, domain)
	case typ == unix.SOCK_DGRAM:
		return fmt.Errorf("%w: it is a Unix datagram socket", ErrNotListening)
	case typ != unix.SOCK_STREAM:
		return fmt.Errorf("%w: it is a Unix socket of type %d, not a stream socket", ErrNotListening, typ)
	case listening == 0:
		return fmt.Errorf("%w: it is a Unix stream socket that is not listening", ErrNotListening)
	}
	return nil
}

func newListener(ul *net.UnixListener, path string, id fileID, owner int, owned bool, opts ListenOptions) *Listener {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = throttled(logger) // refusals come as fast as a client connects
	l := &Listener{path: path, opts: opts, logger: logger, self: os.Getuid(),
		l: ul, file: id, owner: owner, owned: owned, stop: make(chan struct{})}
	interval := opts.HealInterval
	if interval == 0 {
		interval = DefaultHealInterval
	}
	if interval > 0 {
		// Watched from now: a change made as soon as this returns is seen.
		w := watchEntry(filepath.Dir(path), filepath.Base(path))
		l.wg.Go(func() { l.heal(w, interval) })
	}
	return l
}

// bind binds a new socket at path (see Listen) and returns it with the
// socket file's identity.
func bind(path string, opts ListenOptions) (*net.UnixListener, fileID, error) {
	if err := clearStale(path); err != nil {
		return nil, fileID{}, err
	}
	// Bind in a private directory and rename into place, so that the socket
	// is never reachable with looser permissions than asked.
	dir, err := os.MkdirTemp(filepath.Dir(path), ".vigil-socket-")
	if err != nil {
		return nil, fileID{}, fmt.Errorf("listen %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fileID{}, fmt.Errorf("listen %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	mode := os.FileMode(opts.mode())
	if opts.Group != nil {
		if err := os.Chown(tmp, -1, *opts.Group); err != nil {
			l.Close()
			return nil, fileID{}, fmt.Errorf("listen %s: socket group %d: %w", path, *opts.Group, err)
		}
	}
	if err := os.Chmod(tmp, mode); err != nil {
		l.Close()
		return nil, fileID{}, fmt.Errorf("listen %s: %w", path, err)
	}
	id, _ := statID(tmp)
	// Never replace a socket another supervisor created meanwhile.
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		if err = clearStale(path); err == nil {
			err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
		}
	}
	if err != nil {
		l.Close()
		return nil, fileID{}, fmt.Errorf("listen %s: %w", path, err)
	}
	return l, id, nil
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

// heal checks the socket file until Close: interval after a change to its
// entry in the directory (an inotify watch; the wait lets a replacement
// being made finish, and an idle supervisor never wakes), or every
// interval when no watch can be set, while the file cannot be bound
// again, or once the directory itself went away. A directory removed does
// not always end the watch (the listening socket keeps the removed entry,
// and so its directory, alive); one made again at the path is a new one:
// once the socket is bound there, it is watched instead.
func (l *Listener) heal(w *dirWatch, interval time.Duration) {
	var events, lost <-chan struct{}
	var poll <-chan time.Time
	var ticker *time.Ticker
	defer func() {
		if w != nil {
			w.close()
		}
		if ticker != nil {
			ticker.Stop()
		}
	}()
	startPolling := func() {
		if ticker == nil {
			ticker = time.NewTicker(interval)
			poll = ticker.C
		}
	}
	watch := func(nw *dirWatch) {
		if w != nil && w != nw {
			w.close()
		}
		w, events, lost = nw, nil, nil
		if w == nil {
			startPolling()
			return
		}
		events, lost = w.changed, w.lost
		if ticker != nil {
			ticker.Stop()
			ticker, poll = nil, nil
		}
	}
	watch(w)
	var settle <-chan time.Time
	// rewatch: the watch may be of a directory that is gone.
	rewatch := false
	attempt := func() {
		var nw *dirWatch
		if rewatch {
			// Set before the check, as at the start: a change made once
			// the socket is bound again is seen.
			nw = watchEntry(filepath.Dir(l.path), filepath.Base(l.path))
		}
		switch ok := l.check(); {
		case !ok:
			rewatch = true
			startPolling()
			if nw != nil {
				nw.close()
			}
		case nw != nil:
			rewatch = false
			watch(nw)
		}
	}
	for {
		select {
		case <-l.stop:
			return
		case <-poll:
			attempt()
		case <-events:
			if settle == nil {
				settle = time.After(interval)
			}
		case <-settle:
			settle = nil
			attempt()
		case <-lost:
			events, lost = nil, nil
			rewatch = true
			startPolling()
			attempt()
		}
	}
}

// check binds the path again when the file there is not the listener's
// socket any more, and reports whether it is now. Each problem is logged
// once, and the healing once.
func (l *Listener) check() bool {
	l.checks.Add(1)
	id, _ := statID(l.path)
	l.mu.Lock()
	was := l.file
	l.mu.Unlock()
	if id == was && id != (fileID{}) {
		return true
	}
	what := "gone"
	if _, err := os.Lstat(l.path); err == nil {
		what = "replaced"
	}
	ul, nid, err := bind(l.path, l.opts)
	if err != nil {
		if msg := err.Error(); msg != l.problem {
			l.problem = msg
			l.logger.Error("socket file "+what+"; cannot bind it again (retrying)", "socket", l.path, "error", err)
		}
		return false
	}
	l.problem = ""
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		ul.Close()
		os.Remove(l.path)
		return false
	}
	old := l.l
	l.l, l.file, l.owned, l.owner = ul, nid, true, os.Geteuid()
	l.mu.Unlock()
	old.Close() // wakes Accept, which goes on with the new socket
	l.logger.Warn("socket file was "+what+": bound it again", "socket", l.path)
	return true
}

// Path returns the socket file's path.
func (l *Listener) Path() string { return l.path }

// Owner returns the uid that owns the socket file: peers of that uid have
// every role, as root does.
func (l *Listener) Owner() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owner
}

// File returns a duplicate of the listening socket's descriptor, to hand
// to a process that serves it with [FileListener]. The caller closes it.
func (l *Listener) File() (*os.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.l.File()
}

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Accept returns the next connection from a peer that may connect.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		ul := l.l
		l.mu.Unlock()
		c, err := ul.AcceptUnix()
		if err != nil {
			l.mu.Lock()
			healed := l.l != ul && !l.closed
			l.mu.Unlock()
			if healed {
				continue
			}
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

// Close stops listening and removes the socket file, if this listener
// created it and it is still there.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.stop)
		l.wg.Wait()
		l.mu.Lock()
		ul, file, owned := l.l, l.file, l.owned
		l.mu.Unlock()
		err = ul.Close()
		if id, _ := statID(l.path); owned && id == file && id != (fileID{}) {
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

// SetPermissions gives the socket file at path the mode and group opts ask
// for, as Listen does when it binds: for a socket bound once and kept
// (vigil run's), whose allowed users or group the configuration changed.
func SetPermissions(path string, opts ListenOptions) error {
	if opts.Group != nil {
		if err := os.Chown(path, -1, *opts.Group); err != nil {
			return fmt.Errorf("socket %s: group %d: %w", path, *opts.Group, err)
		}
	}
	if err := os.Chmod(path, os.FileMode(opts.mode())); err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	return nil
}
