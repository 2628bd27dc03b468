//go:build !linux

package container

// watcher is Linux's (see the Linux version); elsewhere there is none.
type watcher struct{}

// epollSet: there is none (see sysOps).
type epollSet struct{}

func newWatcher(*Container) (*watcher, error) { return nil, ErrUnsupported }

func (w *watcher) add(*proc, int) {}

func (w *watcher) close() {}

func (w *watcher) run() {}
