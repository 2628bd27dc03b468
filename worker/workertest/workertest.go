// Package workertest is a fake vigil supervisor and a fake controller's
// readiness reader, for testing a program that uses package worker: that it
// registers, answers its own operations and reports ready.
//
//	sup := workertest.New(t)
//	w, _ := worker.Start(ctx, worker.Options{Socket: sup.Path, Handlers: myOps})
//	defer w.Stop()
//	reg, err := sup.WaitRegistration(ctx, nil)
//	reply, err := sup.Call(ctx, reg.ConnectionID, "ping", nil, nil)
//
// A program run as a child process gets sup.Env() in its environment;
// [NewNotifyPipe] gives it a readiness pipe as vigil does (fd 3,
// NOTIFY_PIPE=3), and [NewNotifyLog] a NOTIFY_LOG file for a program tested
// in-process.
package workertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/vigild/vigil/rpc"
)

// ErrNotConnected is returned by [Supervisor.Call] for a connection id that
// is not (or no longer) connected.
var ErrNotConnected = errors.New("workertest: connection not found")

// ErrClosed is returned by waits on a closed Supervisor.
var ErrClosed = errors.New("workertest: supervisor closed")

// Registration is one "register" call a worker made.
type Registration struct {
	// ConnectionID is the id the fake supervisor gave it.
	ConnectionID string
	// State is the registered state, as decoded from JSON (numbers are
	// float64).
	State map[string]any
}

// ProcessID returns the registered "process_id", or 0.
func (r Registration) ProcessID() int {
	f, _ := r.State["process_id"].(float64)
	return int(f)
}

// Supervisor is a fake supervisor listening on a Unix socket. It serves
// "register" only, records every registration and lets the test call
// operations on a registered worker. Its methods are safe for concurrent use.
type Supervisor struct {
	// Path is the socket's path.
	Path string

	ln     net.Listener
	logger *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   map[string]*rpc.Conn
	all     map[*rpc.Conn]bool
	regs    []Registration
	changed chan struct{}
	closed  bool
}

// New starts a fake supervisor on a socket in a new temporary directory
// (short enough for a Unix socket path); tb.Cleanup closes it and removes
// the directory. It fails the test if it cannot listen.
func New(tb testing.TB) *Supervisor {
	tb.Helper()
	dir, err := os.MkdirTemp("", "vigil-wt")
	if err != nil {
		tb.Fatalf("workertest: %v", err)
	}
	s, err := Listen(filepath.Join(dir, "supervisor.ipc"), nil)
	if err != nil {
		os.RemoveAll(dir)
		tb.Fatalf("workertest: %v", err)
	}
	tb.Cleanup(func() {
		s.Close()
		os.RemoveAll(dir)
	})
	return s
}

// Listen starts a fake supervisor on a Unix socket at path (which must not
// exist); logger (nil discards) gets protocol events. The caller must Close
// it.
func Listen(path string, logger *slog.Logger) (*Supervisor, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("workertest: listen: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{
		Path:    path,
		ln:      ln,
		logger:  logger,
		ctx:     ctx,
		cancel:  cancel,
		conns:   make(map[string]*rpc.Conn),
		all:     make(map[*rpc.Conn]bool),
		changed: make(chan struct{}),
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Env returns the environment entry that points a worker process here:
// "VIGIL_SUPERVISOR_SOCKET=" + Path.
func (s *Supervisor) Env() string { return "VIGIL_SUPERVISOR_SOCKET=" + s.Path }

func (s *Supervisor) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		var conn *rpc.Conn
		conn = rpc.NewConn(nc, rpc.Options{
			Accepted: true,
			Logger:   s.logger,
			Handlers: rpc.Handlers{"register": func(ctx context.Context, call *rpc.Call) error {
				return s.register(conn, call)
			}},
		})
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.all[conn] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			conn.Run(s.ctx)
			s.mu.Lock()
			delete(s.all, conn)
			for id, c := range s.conns {
				if c == conn {
					delete(s.conns, id)
				}
			}
			s.mu.Unlock()
		}()
	}
}

func (s *Supervisor) register(conn *rpc.Conn, call *rpc.Call) error {
	var p struct {
		State map[string]any `json:"state"`
	}
	if err := call.Message().Decode(&p); err != nil {
		return rpc.ArgumentError("register: state must be an object: %v", err)
	}
	if p.State == nil {
		p.State = map[string]any{}
	}
	id := uuid.NewString()
	s.mu.Lock()
	s.conns[id] = conn
	s.regs = append(s.regs, Registration{ConnectionID: id, State: p.State})
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return call.Finish(map[string]any{"connection_id": id})
}

// Registrations returns every registration made so far, in order, including
// those of connections since closed.
func (s *Supervisor) Registrations() []Registration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Registration(nil), s.regs...)
}

// Connected reports whether the registration's connection is still open.
func (s *Supervisor) Connected(connectionID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[connectionID] != nil
}

// WaitRegistration returns the first registration, past or future, for
// which match returns true (nil matches any), or ctx's error, or ErrClosed.
func (s *Supervisor) WaitRegistration(ctx context.Context, match func(Registration) bool) (Registration, error) {
	seen := 0
	for {
		s.mu.Lock()
		regs, changed, closed := s.regs[seen:], s.changed, s.closed
		seen = len(s.regs)
		s.mu.Unlock()
		for _, r := range regs {
			if match == nil || match(r) {
				return r, nil
			}
		}
		if closed {
			return Registration{}, ErrClosed
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Registration{}, fmt.Errorf("workertest: waiting for a registration: %w", ctx.Err())
		}
	}
}

// Call calls an operation on the worker registered as connectionID, as the
// real supervisor's forward does: params are the operation's parameters,
// onReply (if not nil) gets each intermediate reply. A failed final reply
// comes with a *rpc.RemoteError. An unknown id is ErrNotConnected.
func (s *Supervisor) Call(ctx context.Context, connectionID, operation string, params any, onReply func(*rpc.Message) error) (*rpc.Message, error) {
	s.mu.Lock()
	conn := s.conns[connectionID]
	s.mu.Unlock()
	if conn == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotConnected, connectionID)
	}
	return conn.Call(ctx, operation, params, onReply)
}

// Close stops listening, closes every connection (workers see the
// supervisor go away) and waits for its goroutines. It is safe to call more
// than once.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	err := s.ln.Close()
	s.cancel()
	s.wg.Wait()
	return err
}
