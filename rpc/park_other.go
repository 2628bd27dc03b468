//go:build !linux

package rpc

import (
	"context"
	"errors"
)

// Parker lets idle connections wait for input without a goroutine each;
// only on Linux (epoll). Elsewhere NewParker fails, and connections keep a
// goroutine each.
type Parker struct{}

// NewParker fails: parking needs Linux.
func NewParker() (*Parker, error) { return nil, errors.New("parker: only on Linux") }

// Run returns at once.
func (p *Parker) Run(ctx context.Context) error { return nil }

// Parked returns 0.
func (p *Parker) Parked() int { return 0 }

func (p *Parker) park(*Conn, int) bool { return false }
func (p *Parker) forget(*Conn, int)    {}
