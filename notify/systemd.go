package notify

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxDatagram is the largest systemd notification, in bytes, that
// SystemdClient sends.
const MaxDatagram = 4096

// systemdSendTimeout bounds one datagram send, so that a wedged receiver
// cannot hang the sender.
const systemdSendTimeout = 5 * time.Second

// SystemdClient sends messages as datagrams to systemd's NOTIFY_SOCKET.
type SystemdClient struct {
	mu     sync.Mutex
	addr   string
	closed bool
	// now reads CLOCK_MONOTONIC in microseconds; a seam for tests.
	now func() (uint64, bool)
}

// NewSystemdClient returns a client for the socket named addr: an absolute
// path, or an abstract socket name starting with '@' (Linux). Anything else
// (a relative path, systemd's "vsock:" addresses) is an error wrapping
// ErrBadEnvironment. The socket is dialled for each message, as sd_notify
// does, so nothing is held open between messages.
func NewSystemdClient(addr string) (*SystemdClient, error) {
	if !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "@") {
		return nil, fmt.Errorf("%w: %s=%q: want an absolute path or an abstract name starting with '@'", ErrBadEnvironment, EnvSocket, addr)
	}
	if len(addr) < 2 || len(addr) > 107 {
		return nil, fmt.Errorf("%w: %s=%q: bad socket name length %d", ErrBadEnvironment, EnvSocket, addr, len(addr))
	}
	return &SystemdClient{addr: addr, now: monotonicUsec}, nil
}

// Send encodes m with EncodeSystemd and sends it as one datagram. A message
// that encodes to nothing is not sent (nil). One over MaxDatagram bytes is
// refused with an error wrapping ErrMessageTooLarge.
func (c *SystemdClient) Send(m Message) error {
	data := encodeSystemd(m, c.now)
	if len(data) == 0 {
		return nil
	}
	if len(data) > MaxDatagram {
		return fmt.Errorf("%w: %d bytes for systemd, at most %d", ErrMessageTooLarge, len(data), MaxDatagram)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: c.addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify: systemd socket: %w", err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(systemdSendTimeout)); err != nil {
		return fmt.Errorf("notify: systemd socket: %w", err)
	}
	if _, err := conn.Write(data); err != nil {
		return fmt.Errorf("notify: systemd socket: %w", err)
	}
	return nil
}

// Close marks the client closed.
func (c *SystemdClient) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

// String describes the client.
func (c *SystemdClient) String() string { return "systemd " + c.addr }

// EncodeSystemd returns m as systemd's KEY=VALUE lines, each ending in '\n',
// in this order:
//
//   - READY=1 when Ready is true (a false Ready is not sent: systemd has no
//     way to say it);
//   - RELOADING=1 and MONOTONIC_USEC=<CLOCK_MONOTONIC in µs> when Reloading
//     or Restarting (systemd knows no restart of its own: it is a reload;
//     MONOTONIC_USEC is left out where the clock cannot be read);
//   - STOPPING=1, WATCHDOG=1;
//   - STATUS=<Status>, newlines replaced by spaces;
//   - ERRNO=<Errno> when Errno is positive (the original's generic -1 is
//     not an errno and is left out);
//   - each Extra field whose key, upper-cased, is made of A-Z, 0-9 and '_'
//     and whose value is a JSON string, number or boolean (true: 1, false:
//     0), sorted by key; other Extra fields are left out.
//
// Healthy has no systemd equivalent and is left out. An empty result means
// there is nothing to send.
func EncodeSystemd(m Message) []byte {
	return encodeSystemd(m, monotonicUsec)
}

func encodeSystemd(m Message, now func() (uint64, bool)) []byte {
	var b strings.Builder
	if m.IsReady() {
		b.WriteString("READY=1\n")
	}
	if m.Reloading || m.Restarting {
		b.WriteString("RELOADING=1\n")
		if usec, ok := now(); ok {
			b.WriteString("MONOTONIC_USEC=" + strconv.FormatUint(usec, 10) + "\n")
		}
	}
	if m.Stopping {
		b.WriteString("STOPPING=1\n")
	}
	if m.Watchdog {
		b.WriteString("WATCHDOG=1\n")
	}
	if m.Status != "" {
		status := m.Status
		if strings.ContainsAny(status, "\r\n") {
			status = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(status)
		}
		b.WriteString("STATUS=" + status + "\n")
	}
	if m.Errno > 0 {
		b.WriteString("ERRNO=" + strconv.Itoa(m.Errno) + "\n")
	}
	for _, k := range sortedKeys(m.Extra) {
		if knownKeys[k] {
			continue
		}
		key := strings.ToUpper(k)
		if !systemdKey(key) {
			continue
		}
		value, ok := systemdValue(m.Extra[k])
		if !ok {
			continue
		}
		b.WriteString(key + "=" + value + "\n")
	}
	return []byte(b.String())
}

func systemdKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func systemdValue(raw json.RawMessage) (string, bool) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", false
	}
	switch v := v.(type) {
	case string:
		if strings.ContainsAny(v, "\r\n") {
			return "", false
		}
		return v, true
	case float64:
		return strings.TrimSpace(string(raw)), true
	case bool:
		if v {
			return "1", true
		}
		return "0", true
	}
	return "", false
}
