package logs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// journal sends lines to journald over its native protocol: one datagram
// per line on a Unix datagram socket, each a list of fields, "KEY=value\n",
// or for a value holding a newline "KEY\n", its length as 64-bit little
// endian, the value and "\n" (systemd's "Native Journal Protocol").
//
// A line gets MESSAGE, PRIORITY=6 (info, as journald gives a unit's output
// by default), SYSLOG_IDENTIFIER (the service, as journalctl shows it),
// SYSLOG_PID (the child's pid: journalctl shows "web[4242]"), and
// VIGIL_SERVICE, VIGIL_INSTANCE, VIGIL_STREAM to select by
// (journalctl VIGIL_SERVICE=web VIGIL_INSTANCE=1).
type journal struct {
	*pump
	path   string
	logger *slog.Logger
	buf    []byte
	failed bool

	mu      sync.Mutex // guards conn and aborted against abort
	conn    *net.UnixConn
	aborted bool
}

func newJournal(path string, queue int, logger *slog.Logger) *journal {
	j := &journal{path: path, logger: logger}
	j.pump = newPump("journal", queue, toJournal, j.write, j.abort)
	return j
}

// journalFields are the fields every line of a capture's stream shares.
func journalFields(id Identity, s Stream) []byte {
	var b []byte
	b = appendJournalField(b, "PRIORITY", []byte("6"))
	b = appendJournalField(b, "SYSLOG_IDENTIFIER", []byte(id.Service))
	b = appendJournalField(b, "SYSLOG_PID", strconv.AppendInt(nil, int64(id.PID), 10))
	b = appendJournalField(b, "VIGIL_SERVICE", []byte(id.Service))
	b = appendJournalField(b, "VIGIL_INSTANCE", strconv.AppendInt(nil, int64(id.Instance), 10))
	b = appendJournalField(b, "VIGIL_STREAM", []byte(s.String()))
	return b
}

// appendJournalField appends one field in the form its value needs.
func appendJournalField(b []byte, key string, value []byte) []byte {
	b = append(b, key...)
	if bytes.IndexByte(value, '\n') < 0 {
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}

func (j *journal) write(batches []*batch) {
	for _, b := range batches {
		fields := b.cap.journalFields[b.stream-1]
		eachLine(b.data, func(line []byte) bool {
			j.buf = append(j.buf[:0], fields...)
			j.buf = appendJournalField(j.buf, "MESSAGE", line)
			if err := j.send(j.buf); err != nil {
				b.cap.dropped[toJournal].Add(1)
				if !j.failed {
					j.failed = true
					j.logger.Warn("journal: lines lost", "socket", j.path, "error", err)
				}
				return true
			}
			if j.failed {
				j.failed = false
				j.logger.Info("journal written again", "socket", j.path)
			}
			return true
		})
	}
}

// send writes one datagram, connecting first, and once again after a
// failure (journald restarted).
func (j *journal) send(msg []byte) error {
	var err error
	for range 2 {
		conn, aborted := j.connection()
		if aborted {
			return errAborted
		}
		if conn == nil {
			if conn, err = j.dial(); err != nil {
				return err
			}
		}
		if _, err = conn.Write(msg); err == nil {
			return nil
		}
		j.mu.Lock()
		if j.conn == conn {
			j.conn = nil
		}
		j.mu.Unlock()
		conn.Close()
	}
	return err
}

func (j *journal) connection() (*net.UnixConn, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.conn, j.aborted
}

func (j *journal) dial() (*net.UnixConn, error) {
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: j.path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.aborted {
		conn.Close()
		return nil, errAborted
	}
	j.conn = conn
	return conn, nil
}

// errAborted fails the sends after close gave up.
var errAborted = errors.New("journal: closed")

// abort ends a send blocked on a full journald, and every later one.
func (j *journal) abort() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.aborted = true
	if j.conn != nil {
		_ = j.conn.SetWriteDeadline(time.Now())
	}
}

// closeConn closes the socket once the pump has stopped.
func (j *journal) closeConn() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.conn != nil {
		j.conn.Close()
		j.conn = nil
	}
}
