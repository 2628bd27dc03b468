package rpc

import "time"

// DefaultParkAfter is how long a connection with a [Parker] waits for
// input before it is parked, unless [Options.ParkAfter] says otherwise.
const DefaultParkAfter = time.Second

// parkState is a connection's place in its Parker (under the Conn's mu).
type parkState struct {
	parked bool
	fd     int // the socket's descriptor, while parked
}

// parker returns the connection's Parker when it can park: a socket
// transport and a Parker given.
func (c *Conn) parker() *Parker {
	if c.opts.Parker == nil || c.rd.raw == nil || c.rd.dl == nil || c.opts.ParkAfter < 0 {
		return nil
	}
	return c.opts.Parker
}

func (c *Conn) parkAfter() time.Duration {
	if c.opts.ParkAfter > 0 {
		return c.opts.ParkAfter
	}
	return DefaultParkAfter
}

// parkNow parks the connection, unless it is ending: its reading goroutine
// then returns, and the Parker starts one when input comes.
func (c *Conn) parkNow(p *Parker) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	ok := false
	_ = c.rd.raw.Control(func(fd uintptr) { ok = p.park(c, int(fd)) })
	if ok {
		c.park = parkState{parked: true, fd: c.park.fd}
	}
	return ok
}

// unparkLocked takes the connection out of its Parker (c.mu is held) and
// reports whether it was parked: then nobody reads it.
func (c *Conn) unparkLocked() bool {
	if !c.park.parked {
		return false
	}
	c.park.parked = false
	c.opts.Parker.forget(c, c.park.fd)
	return true
}

// wake is the Parker's: input came for the parked connection, which
// reads on in a new goroutine (unless it has just been closed).
func (c *Conn) wake() {
	c.mu.Lock()
	if !c.unparkLocked() {
		c.mu.Unlock()
		return
	}
	resume := c.resume
	c.mu.Unlock()
	go resume()
}
