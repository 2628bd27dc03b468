//go:build !linux

package logs

import (
	"context"
	"errors"
)

// errNoPoller: the poller cannot take the files (not Linux).
var errNoPoller = errors.New("no poller")

// poller is the Linux reader of every pipe; elsewhere each stream has a
// goroutine of its own.
type poller struct{}

func (p *poller) add(c *Capture) error { return errNoPoller }
func (p *poller) close(c *Capture)     {}

func (p *poller) wait(context.Context) {}
