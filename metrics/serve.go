package metrics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// IsPath reports whether a listen address is the path of a Unix socket
// (it has a slash) rather than a TCP address ("127.0.0.1:9464", ":9464").
func IsPath(addr string) bool { return strings.Contains(addr, "/") }

// Listen listens at addr: a TCP address, or the path of a Unix socket
// (see IsPath), made with mode (0: 0600). A socket file left at the path
// by a process that has gone is replaced; one that answers is not.
func Listen(addr string, mode os.FileMode) (net.Listener, error) {
	if !IsPath(addr) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
		}
		return l, nil
	}
	if mode == 0 {
		mode = 0o600
	}
	if fi, err := os.Lstat(addr); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("metrics: listen on %s: a file that is not a socket is there", addr)
		}
		if c, err := net.DialTimeout("unix", addr, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("metrics: listen on %s: %w (another process serves it)", addr, syscall.EADDRINUSE)
		}
		if err := os.Remove(addr); err != nil {
			return nil, fmt.Errorf("metrics: remove the stale socket %s: %w", addr, err)
		}
	}
	// Bound in a private directory, given its mode, then renamed into
	// place: never reachable with looser permissions than asked.
	dir, err := os.MkdirTemp(filepath.Dir(addr), ".vigil-metrics-")
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, mode); err != nil {
		ul.Close()
		return nil, fmt.Errorf("metrics: mode of %s: %w", addr, err)
	}
	if err := os.Rename(tmp, addr); err != nil {
		ul.Close()
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	return &unixListener{UnixListener: ul, path: addr}, nil
}

// unixListener removes its socket file when closed.
type unixListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}

// Addr names the socket by its path.
func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Serve serves h on l until ctx ends, then shuts the server down (waiting
// up to 5 seconds for the scrapes being served) and closes l (a Unix
// socket's file made by Listen is removed). It returns nil after ctx ends, or the error
// that stopped it serving.
func Serve(ctx context.Context, l net.Listener, h http.Handler, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(limit(l, MaxConnections, logger)) }()
	select {
	case err := <-served:
		return fmt.Errorf("metrics: serve on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: serve on %s: %w", l.Addr(), err)
	}
	return nil
}

// MaxConnections is how many connections Serve serves at once; further
// ones are closed as soon as they are accepted, with one log line until
// the count falls again. A scraper needs one or two: the bound keeps a
// careless (or hostile) client from taking the descriptors the process
// serving the endpoint (the supervisor) needs for its own socket and its
// monitors, for as long as the server's timeouts let idle connections
// stay.
const MaxConnections = 32

// limitListener accepts at most max connections at once (see
// MaxConnections).
type limitListener struct {
	net.Listener
	max     int32
	active  atomic.Int32
	atLimit atomic.Bool
	logger  *slog.Logger
}

func limit(l net.Listener, max int, logger *slog.Logger) net.Listener {
	return &limitListener{Listener: l, max: int32(max), logger: logger}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.active.Add(1) <= l.max {
			return &limitedConn{Conn: c, l: l}, nil
		}
		l.active.Add(-1)
		c.Close()
		if !l.atLimit.Swap(true) {
			l.logger.Warn("metrics: too many connections at once: closing new ones until some close", "max", l.max, "listen", l.Addr().String())
		}
	}
}

// limitedConn gives its place back once closed.
type limitedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.l.active.Add(-1) < c.l.max && c.l.atLimit.CompareAndSwap(true, false) {
			c.l.logger.Info("metrics: accepting connections again", "listen", c.l.Addr().String())
		}
	})
	return err
}

// buffered writes h's response through a 64 KiB buffer: the few hundred
// KiB of a large fleet's scrape go out in a few writes, not one per 4 KiB
// (the http package's own buffer), which cost a sixth of a scrape.
func buffered(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bw := responseBuffers.Get().(*bufio.Writer)
		bw.Reset(w)
		h.ServeHTTP(&bufferedWriter{ResponseWriter: w, w: bw}, r)
		_ = bw.Flush()
		bw.Reset(nil)
		responseBuffers.Put(bw)
	})
}

var responseBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// bufferedWriter is a ResponseWriter whose body goes through w.
type bufferedWriter struct {
	http.ResponseWriter
	w *bufio.Writer
}

func (b *bufferedWriter) Write(p []byte) (int, error) { return b.w.Write(p) }
