package probe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// bodyLimit is how much of a response body an HTTP probe reads; past it
// the connection is closed rather than drained.
const bodyLimit = 10 << 10

// snippetLimit is how much of a failing response's body its error quotes.
const snippetLimit = 200

// userAgent is the default User-Agent of HTTP probes.
const userAgent = "vigil-probe/1"

// httpChecker makes GET requests on a connection it keeps alive from one
// attempt to the next. It writes the request bytes it prepared once and
// reads the response itself (wire.go): no Transport, so an idle probe holds
// one socket and no goroutine.
type httpChecker struct {
	url     *url.URL
	headers http.Header
	status  StatusRange
	req     []byte // the request for url, prepared once
	target  string // dialAddr(url)
	tls     *tls.Config

	conn      net.Conn
	addr      string // of conn
	stopWatch func() bool
}

// readers recycles the bufio.Readers of attempts: an idle connection holds
// none.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

func newHTTPChecker(h *HTTP) (*httpChecker, error) {
	u, err := parseProbeURL(h.URL)
	if err != nil {
		return nil, &FieldError{Field: "http.url", Err: err}
	}
	c := &httpChecker{url: u, headers: h.Headers.Clone(), status: h.Status.withDefaults()}
	c.req, c.target = c.request(u), dialAddr(u)
	if u.Scheme == "https" {
		c.tls = &tls.Config{InsecureSkipVerify: true} // see HTTP's doc
		if net.ParseIP(u.Hostname()) == nil {
			c.tls.ServerName = u.Hostname()
		}
	}
	return c, nil
}

// request returns the bytes of a GET of u with c's headers.
func (c *httpChecker) request(u *url.URL) []byte {
	host, agent := u.Host, userAgent
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\n", u.RequestURI())
	keys := make([]string, 0, len(c.headers))
	for k := range c.headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var rest bytes.Buffer
	for _, k := range keys {
		for _, v := range c.headers[k] {
			switch {
			case strings.EqualFold(k, "Host"):
				host = v
			case strings.EqualFold(k, "User-Agent"):
				agent = v
			default:
				fmt.Fprintf(&rest, "%s: %s\r\n", k, v)
			}
		}
	}
	fmt.Fprintf(&b, "Host: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n", host, agent)
	b.Write(rest.Bytes())
	b.WriteString("\r\n")
	return b.Bytes()
}

// dialAddr is host:port of u, with the scheme's default port.
func dialAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func (c *httpChecker) check(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	defer func() {
		if c.conn != nil {
			// Idle, the connection keeps no deadline: its timer would
			// fire for nothing.
			_ = c.conn.SetDeadline(time.Time{})
		}
	}()
	u, req, addr := c.url, c.req, c.target
	for redirects := 0; ; redirects++ {
		resp, err := c.roundTrip(ctx, deadline, addr, req)
		if err != nil {
			return timedOut(err, timeout)
		}
		if loc := resp.location; loc != "" {
			next, err := u.Parse(loc)
			if err != nil {
				return fmt.Errorf("status %d: Location %q: %w", resp.status, loc, err)
			}
			if next.Scheme == u.Scheme && dialAddr(next) == addr {
				if redirects == MaxRedirects {
					return fmt.Errorf("stopped after %d redirects, at %s", MaxRedirects, next.Redacted())
				}
				u, req = next, c.request(next)
				continue
			}
			// Elsewhere: not followed; this response decides.
		}
		if !c.status.Contains(resp.status) {
			if resp.snippet != "" {
				return fmt.Errorf("status %d, want %s: %q", resp.status, c.status, resp.snippet)
			}
			return fmt.Errorf("status %d, want %s", resp.status, c.status)
		}
		return nil
	}
}

// response is what an attempt needs of one.
type response struct {
	status   int
	location string // of a redirect
	snippet  string // of a failing response's body
}

// errNoResponse marks an exchange that failed before any byte of the
// response came: on a reused connection, the server may have closed it
// while idle, and the request is made again on a new one.
var errNoResponse = errors.New("no response")

// roundTrip sends req to addr, on the kept connection when it goes there.
func (c *httpChecker) roundTrip(ctx context.Context, deadline time.Time, addr string, req []byte) (response, error) {
	if c.conn != nil && c.addr != addr {
		c.closeConn()
	}
	reused := c.conn != nil
	for {
		if c.conn == nil {
			if err := c.dial(ctx, deadline, addr); err != nil {
				return response{}, err
			}
		}
		resp, err := c.exchange(ctx, deadline, req)
		if err == nil {
			return resp, nil
		}
		c.closeConn()
		if !reused || !errors.Is(err, errNoResponse) || ctx.Err() != nil || !time.Now().Before(deadline) {
			return response{}, err
		}
		reused = false
	}
}

func (c *httpChecker) dial(ctx context.Context, deadline time.Time, addr string) error {
	d := net.Dialer{Deadline: deadline, KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	if c.tls != nil {
		tc := tls.Client(conn, c.tls)
		if err := conn.SetDeadline(deadline); err != nil {
			_ = conn.Close()
			return err
		}
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return fmt.Errorf("tls handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	c.conn, c.addr = conn, addr
	// The probe's removal or the scheduler's stop interrupts an exchange.
	c.stopWatch = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return nil
}

func (c *httpChecker) exchange(ctx context.Context, deadline time.Time, req []byte) (response, error) {
	if err := c.conn.SetDeadline(deadline); err != nil {
		return response{}, err
	}
	// After SetDeadline: a cancellation that came before it is seen here,
	// one that comes after moves the deadline to the past.
	if err := ctx.Err(); err != nil {
		return response{}, err
	}
	if _, err := c.conn.Write(req); err != nil {
		return response{}, fmt.Errorf("%w: %w", errNoResponse, err)
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(c.conn)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	if _, err := br.Peek(1); err != nil {
		return response{}, fmt.Errorf("%w: %w", errNoResponse, err)
	}
	h, err := readHead(br)
	if err != nil {
		return response{}, err
	}
	r := response{status: h.status}
	switch h.status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		r.location = h.location
	}
	body, reusable := h.body(br)
	var read int64
	if r.location == "" && !c.status.Contains(h.status) {
		var buf [snippetLimit]byte
		n, _ := io.ReadFull(body, buf[:])
		r.snippet = strings.TrimSpace(string(buf[:n]))
		read = int64(n)
	}
	n, err := io.CopyN(io.Discard, body, bodyLimit+1-read)
	if err != nil && !errors.Is(err, io.EOF) {
		c.closeConn()
		return response{}, fmt.Errorf("status %d, reading the body: %w", h.status, err)
	}
	if err == nil || read+n > bodyLimit || !reusable || br.Buffered() > 0 {
		// Not reusable: a body longer than we read, the server's
		// Connection: close, or bytes beyond the response.
		c.closeConn()
	}
	return r, nil
}

func (c *httpChecker) closeConn() {
	if c.conn == nil {
		return
	}
	c.stopWatch()
	_ = c.conn.Close()
	c.conn, c.stopWatch = nil, nil
}

func (c *httpChecker) close() { c.closeConn() }
