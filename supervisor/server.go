package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigild/vigil/internal/fdlimit"
	"github.com/vigild/vigil/rpc"
)

// DefaultStatusTimeout bounds each monitor's Status and the controller's
// children reply within one status call.
const DefaultStatusTimeout = 5 * time.Second

// Server is the supervisor server. Set its fields, then call [Server.Serve]
// once. The zero value serves with no monitors and no logging.
type Server struct {
	// Monitors watch the registered workers.
	Monitors []Monitor
	// Logger receives the server's events; nil discards them.
	Logger *slog.Logger
	// ParentPID is the controller: the process that restart signals,
	// whatever its pid (1 included, for a controller that runs as a
	// container's init), and the only one that may register with the role
	// "controller". 0 means the server's parent process, as in the
	// original; then restart refuses to signal pid 1 (a hand-started
	// supervisor whose parent has gone).
	ParentPID int
	// Limits bound what one client can make the server hold.
	Limits Limits
	// Access says who may read, control and diagnose; its zero value lets
	// every peer read and only root and the socket's owner do more.
	Access Access
	// StatusTimeout bounds each monitor's part of a status call, and the
	// controller's (default DefaultStatusTimeout). A caller that gives a
	// "timeout" gets its parts within three quarters of it.
	StatusTimeout time.Duration
	// DrainTimeout, when positive, is how long Serve goes on serving the
	// connections it has once ctx ends (it accepts no more): each is closed
	// as soon as it is idle. For a supervisor that shares its socket with
	// the one replacing it, so that nothing asked of it is lost. 0: every
	// connection is closed at once.
	DrainTimeout time.Duration

	liveMu sync.Mutex
	live   map[*rpc.Conn]bool // every connection being served

	// ParkAfter is how long a connection waits for input before it waits
	// with no goroutine of its own (on Linux; see rpc.Parker): an idle
	// registered worker then costs its connection's heap memory only
	// (default rpc.DefaultParkAfter; negative: never).
	ParkAfter time.Duration

	once      sync.Once
	logger    *slog.Logger
	clientLog *slog.Logger // for what clients cause: throttled
	handlers  rpc.Handlers
	events    *eventQueue
	limits    Limits
	owners    []int // uids with every role besides root (set by Serve)

	active  atomic.Int64 // connections being served
	atLimit atomic.Bool  // at MaxConnections: refusing, and said so
	// fdCapped: MaxConnections was lowered to what the descriptors allow.
	fdCapped bool
	refused  atomic.Int64 // connections refused while at the limit
	stats    serverStats  // what Stats reports

	mu          sync.Mutex
	byID        map[string]*Connection
	byConn      map[*rpc.Conn]*Connection
	controllers map[*Connection]bool // the registrations with the role "controller"
	entries     []byte               // the connections as status sends them; nil: to be made
	seq         uint64
}

func (s *Server) init() {
	s.once.Do(func() {
		s.logger = s.Logger
		if s.logger == nil {
			s.logger = slog.New(slog.DiscardHandler)
		}
		s.clientLog = throttled(s.logger)
		if s.StatusTimeout <= 0 {
			s.StatusTimeout = DefaultStatusTimeout
		}
		s.limits = s.Limits.withDefaults()
		s.fdCapped = s.limits.capToDescriptors(fdlimit.Max())
		s.owners = []int{os.Geteuid()}
		s.byID = make(map[string]*Connection)
		s.controllers = make(map[*Connection]bool)
		s.byConn = make(map[*rpc.Conn]*Connection)
		s.events = newEventQueue()
		s.handlers = rpc.Handlers{
			"register": s.counted("register", s.doRegister),
			"forward":  s.counted("forward", s.doForward),
			"restart":  s.counted("restart", s.doRestart),
			"status":   s.counted("status", s.doStatus),
		}
	})
}

// Serve runs the monitors and serves connections accepted from l until ctx
// ends. Then it closes l (before it returns) and every connection, and returns once every
// handler, monitor and goroutine it started has returned. It returns nil
// after ctx ends, or the listener's error if accepting fails otherwise.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.init()
	if o, ok := l.(interface{ Owner() int }); ok && !slices.Contains(s.owners, o.Owner()) {
		s.owners = append(s.owners, o.Owner())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Monitors and the event queue outlive the connections, so that every
	// removal reaches the monitors before they stop.
	mctx, stopMonitors := context.WithCancel(context.Background())
	var monitors sync.WaitGroup
	monitors.Go(func() { s.events.run(mctx, s.Monitors, s.logger) })
	// The parker too: connections park in it until they end.
	var parker *rpc.Parker
	if s.ParkAfter >= 0 {
		if p, err := rpc.NewParker(); err == nil {
			parker = p
			monitors.Go(func() {
				if err := p.Run(mctx); err != nil {
					s.logger.Error("idle connections are not woken", "error", err)
				}
			})
		}
	}
	for _, m := range s.Monitors {
		monitors.Go(func() { runMonitor(mctx, m, s.logger) })
	}
	// The connections run until drained (see DrainTimeout), not until ctx
	// ends.
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	var conns sync.WaitGroup
	defer func() {
		cancel()
		s.drain()
		cancelConns()
		conns.Wait()
		stopMonitors()
		monitors.Wait()
	}()

	if s.fdCapped {
		s.logger.Warn("max_connections is more than this process's descriptors allow: serving fewer at once, so that its monitors and operators' calls still have descriptors",
			"key", "supervisor.max_connections", "max_connections", s.Limits.withDefaults().MaxConnections, "RLIMIT_NOFILE", fdlimit.Max(), "serving_at_most", s.limits.MaxConnections)
	}
	var outOfFDs time.Time // since when accepting has failed for want of descriptors
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer func() {
		stop()
		l.Close() // once closed, the listener is closed when Serve returns
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Said once, then again when it is over: retried ten times a
				// second, this would be ten lines a second.
				if outOfFDs.IsZero() {
					outOfFDs = time.Now()
					s.logger.Error("accept failed: out of file descriptors; new connections wait until some are freed", "error", err)
				}
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		if !outOfFDs.IsZero() {
			s.logger.Info("accepting connections again: descriptors were freed", "after", time.Since(outOfFDs).Round(time.Millisecond))
			outOfFDs = time.Time{}
		}
		if s.active.Load() >= int64(s.limits.MaxConnections) {
			c.Close()
			s.refused.Add(1)
			s.stats.refused.Add(1)
			if !s.atLimit.Swap(true) {
				s.logger.Warn("connection limit reached: refusing new connections until some close",
					"max_connections", s.limits.MaxConnections, "key", "supervisor.max_connections")
			}
			continue
		}
		s.active.Add(1)
		conns.Add(1)
		s.serveConn(connCtx, c, parker, func() {
			if s.active.Add(-1) < int64(s.limits.MaxConnections) && s.atLimit.CompareAndSwap(true, false) {
				s.logger.Info("accepting connections again", "refused", s.refused.Swap(0))
			}
			conns.Done()
		})
	}
}

// serveConn starts serving one accepted connection, with no goroutine of
// its own while it is idle (parked); once it has ended, it is forgotten
// and ended called.
func (s *Server) serveConn(ctx context.Context, c net.Conn, parker *rpc.Parker, ended func()) {
	peer := unknownPeer
	if pc, ok := c.(interface{ Credentials() Credentials }); ok {
		peer = pc.Credentials()
	}
	conn := rpc.NewConn(c, rpc.Options{
		Accepted:    true,
		Handlers:    s.handlers,
		MaxLineSize: s.limits.MaxLineSize,
		MaxInFlight: s.limits.MaxInFlight,
		LineTimeout: s.limits.LineTimeout,
		Logger:      withPeerAttrs(s.clientLog, peer),
		Parker:      parker,
		ParkAfter:   s.ParkAfter,
	})
	s.liveMu.Lock()
	if s.live == nil {
		s.live = map[*rpc.Conn]bool{}
	}
	s.live[conn] = true
	s.liveMu.Unlock()
	conn.Start(withPeer(ctx, peer), func(error) { // the connection logs its own errors
		s.liveMu.Lock()
		delete(s.live, conn)
		s.liveMu.Unlock()
		s.remove(conn)
		ended()
	})
}

// drainQuiet is how long a connection must have been idle to be closed
// while draining: long enough for a client that has just connected to send
// its call.
const drainQuiet = 200 * time.Millisecond

// drain, once no connection is accepted any more, closes each connection
// as soon as it is idle (no call under way either way, nothing read or
// written for drainQuiet), for at most DrainTimeout: a supervisor that a
// new one replaces answers what it was asked, and its clients reconnect
// to the new one.
func (s *Server) drain() {
	if s.DrainTimeout <= 0 {
		return
	}
	deadline := time.Now().Add(s.DrainTimeout)
	for {
		s.liveMu.Lock()
		left := 0
		for c := range s.live {
			if c.Idle(drainQuiet) {
				c.Close()
			} else {
				left++
			}
		}
		s.liveMu.Unlock()
		if left == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// remove forgets the registration of a connection that has ended.
func (s *Server) remove(conn *rpc.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.byConn[conn]; old != nil {
		delete(s.byConn, conn)
		s.forget(old)
		s.events.push(monitorEvent{conn: old})
		s.logger.Debug("connection removed", "connection_id", old.id, "process_id", old.ProcessID())
	}
}

// add records a registration; s.mu is held.
func (s *Server) add(c *Connection) {
	s.byID[c.id] = c
	s.byConn[c.conn] = c
	if c.Role() == "controller" {
		s.controllers[c] = true
	}
	s.entries = nil
}

// forget drops a registration from the index by id; s.mu is held.
func (s *Server) forget(c *Connection) {
	delete(s.byID, c.id)
	delete(s.controllers, c)
	s.entries = nil
}

// Connections returns the current registrations, in the order they came.
func (s *Server) Connections() []*Connection {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedLocked()
}

// sortedLocked returns the registrations in the order they came; s.mu is
// held.
func (s *Server) sortedLocked() []*Connection {
	list := make([]*Connection, 0, len(s.byID))
	for _, c := range s.byID {
		list = append(list, c)
	}
	slices.SortFunc(list, func(a, b *Connection) int { return cmp.Compare(a.seq, b.seq) })
	return list
}

// statusEntries returns the connections as status sends them: a JSON
// array made once per change of the registrations, and shared by every
// status reply until the next (it must not be changed).
func (s *Server) statusEntries() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = appendEntries(nil, s.sortedLocked(), statusRoom(s.limits.MaxLineSize))
	}
	return s.entries
}

// controllerList returns the registrations with the role "controller", in
// the order they came (one, usually).
func (s *Server) controllerList() []*Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]*Connection, 0, len(s.controllers))
	for c := range s.controllers {
		list = append(list, c)
	}
	slices.SortFunc(list, func(a, b *Connection) int { return cmp.Compare(a.seq, b.seq) })
	return list
}

// Lookup returns the registration with that connection id, or nil.
func (s *Server) Lookup(id string) *Connection {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}
