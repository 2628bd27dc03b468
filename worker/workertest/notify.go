package workertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigild/vigil/notify"
)

// Notifications collects the readiness messages a worker sends, as vigil's
// controller would read them. Its methods are safe for concurrent use.
type Notifications struct {
	env string

	mu      sync.Mutex
	msgs    []notify.Message
	changed chan struct{}
	ended   bool

	child  *os.File // pipe: the child's end, until the test closes it
	pollMu sync.Mutex
	poll   func() []notify.Message // log file: read the new lines
	stop   func()                  // ends the reader
	wg     sync.WaitGroup          // the pipe reader
}

// NewNotifyPipe makes a readiness pipe as vigil's controller does: give
// [Notifications.ChildFile] to the worker process as its fd 3
// (exec.Cmd.ExtraFiles[0]) with [Notifications.Env] in its environment, and
// call [Notifications.CloseChildFile] once it has started. tb.Cleanup closes
// the pipe and waits for its reader.
func NewNotifyPipe(tb testing.TB) *Notifications {
	tb.Helper()
	r, w, err := notify.Pipe()
	if err != nil {
		tb.Fatalf("workertest: %v", err)
	}
	n := &Notifications{env: notify.EnvPipe + "=3", changed: make(chan struct{}), child: w}
	n.stop = func() { r.Close() }
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		rd := notify.NewReader(r, nil)
		for {
			m, err := rd.Next()
			if err != nil {
				n.end()
				return
			}
			n.add(m)
		}
	}()
	tb.Cleanup(n.Close)
	return n
}

// NewNotifyLog makes a NOTIFY_LOG file in a temporary directory, for a
// worker tested in-process: set [Notifications.Env] with t.Setenv, or pass
// [Notifications.Getenv] to worker.NewNotifier.
func NewNotifyLog(tb testing.TB) *Notifications {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "notify.log")
	n := &Notifications{env: notify.EnvLog + "=" + path, changed: make(chan struct{})}
	read := 0
	n.poll = func() []notify.Message {
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		if _, err := f.Seek(int64(read), io.SeekStart); err != nil {
			return nil
		}
		b, _ := io.ReadAll(f)
		// only complete lines
		end := 0
		for i, c := range b {
			if c == '\n' {
				end = i + 1
			}
		}
		read += end
		var msgs []notify.Message
		rd := notify.NewReader(bytes.NewReader(b[:end]), nil)
		for {
			m, err := rd.Next()
			if err != nil {
				return msgs
			}
			msgs = append(msgs, m)
		}
	}
	return n
}

// Env returns the environment entry naming the channel: "NOTIFY_PIPE=3" or
// "NOTIFY_LOG=path".
func (n *Notifications) Env() string { return n.env }

// Getenv is an environment lookup holding only [Notifications.Env], for
// worker.NewNotifier in an in-process test.
func (n *Notifications) Getenv(key string) string {
	k, v, _ := strings.Cut(n.env, "=")
	if key == k {
		return v
	}
	return ""
}

// ChildFile returns the pipe's write end to hand to the child (nil for a
// log file).
func (n *Notifications) ChildFile() *os.File { return n.child }

// CloseChildFile closes this process's copy of the child's end, so that the
// reader ends when the child exits. Call it once the child has started.
func (n *Notifications) CloseChildFile() {
	if n.child != nil {
		n.child.Close()
	}
}

func (n *Notifications) add(m notify.Message) {
	n.mu.Lock()
	n.msgs = append(n.msgs, m)
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
}

func (n *Notifications) end() {
	n.mu.Lock()
	if !n.ended {
		n.ended = true
		close(n.changed)
		n.changed = make(chan struct{})
	}
	n.mu.Unlock()
}

// refresh reads a log file's new lines.
func (n *Notifications) refresh() {
	if n.poll == nil {
		return
	}
	n.pollMu.Lock()
	msgs := n.poll()
	n.pollMu.Unlock()
	for _, m := range msgs {
		n.add(m)
	}
}

// Messages returns the messages received so far.
func (n *Notifications) Messages() []notify.Message {
	n.refresh()
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]notify.Message(nil), n.msgs...)
}

// ErrEnded is returned by Wait when the pipe was closed (the worker exited)
// before a matching message came.
var ErrEnded = errors.New("workertest: readiness channel ended")

// Wait returns the first message, past or future, for which match returns
// true, or ctx's error, or ErrEnded.
func (n *Notifications) Wait(ctx context.Context, match func(notify.Message) bool) (notify.Message, error) {
	seen := 0
	for {
		n.refresh()
		n.mu.Lock()
		msgs, changed, ended := n.msgs[seen:], n.changed, n.ended
		seen = len(n.msgs)
		n.mu.Unlock()
		for _, m := range msgs {
			if match(m) {
				return m, nil
			}
		}
		if ended {
			return notify.Message{}, ErrEnded
		}
		var tick <-chan time.Time
		var t *time.Timer
		if n.poll != nil {
			t = time.NewTimer(10 * time.Millisecond)
			tick = t.C
		}
		select {
		case <-changed:
		case <-tick:
		case <-ctx.Done():
			return notify.Message{}, fmt.Errorf("workertest: waiting for a readiness message: %w", ctx.Err())
		}
		if t != nil {
			t.Stop()
		}
	}
}

// WaitReady waits for {"ready":true}.
func (n *Notifications) WaitReady(ctx context.Context) error {
	_, err := n.Wait(ctx, notify.Message.IsReady)
	return err
}

// WaitHealthy waits for {"healthy":true}.
func (n *Notifications) WaitHealthy(ctx context.Context) error {
	_, err := n.Wait(ctx, func(m notify.Message) bool { return m.Healthy })
	return err
}

// Close ends the reader of a pipe and waits for it.
func (n *Notifications) Close() {
	if n.stop != nil {
		n.stop()
		n.wg.Wait()
	}
	n.CloseChildFile()
}
