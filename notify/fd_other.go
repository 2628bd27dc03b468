//go:build !unix

package notify

import "errors"

func checkFD(int) error { return errors.New("file descriptors are not supported on this system") }

func closeOnExec(int) {}
