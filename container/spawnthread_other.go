//go:build !linux

package container

// spawnThread is what a spawner thread forks from (see the Linux version).
type spawnThread struct{}

func isMainThread() bool { return false }

func newSpawnThread(bool) *spawnThread { return &spawnThread{} }

func (th *spawnThread) fetch(fds []int) ([]uintptr, error) {
	out := make([]uintptr, len(fds))
	for i, fd := range fds {
		out[i] = uintptr(fd)
	}
	return out, nil
}

func (th *spawnThread) release([]uintptr) {}
