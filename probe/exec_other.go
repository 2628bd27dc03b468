//go:build !linux

package probe

import "context"

// ExecRunner is the default Runner; it needs Linux and returns
// ErrUnsupported elsewhere.
func ExecRunner(ctx context.Context, argv, env []string, dir string) (int, error) {
	return -1, ErrUnsupported
}
