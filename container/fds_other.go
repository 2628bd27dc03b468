//go:build !linux

package container

// InheritNothing returns ErrUnsupported where children cannot be run.
func InheritNothing() error { return ErrUnsupported }
