package logs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// parseJournal decodes one datagram of the native protocol.
func parseJournal(t *testing.T, b []byte) map[string]string {
	t.Helper()
	fields := make(map[string]string)
	for len(b) > 0 {
		i := bytes.IndexAny(b, "=\n")
		if i < 0 {
			t.Fatalf("field without end: %q", b)
		}
		key := string(b[:i])
		if b[i] == '=' {
			j := bytes.IndexByte(b[i+1:], '\n')
			if j < 0 {
				t.Fatalf("value without newline: %q", b)
			}
			fields[key] = string(b[i+1 : i+1+j])
			b = b[i+1+j+1:]
			continue
		}
		n := binary.LittleEndian.Uint64(b[i+1 : i+9])
		fields[key] = string(b[i+9 : i+9+int(n)])
		if b[i+9+int(n)] != '\n' {
			t.Fatalf("binary value not followed by a newline: %q", b)
		}
		b = b[i+9+int(n)+1:]
	}
	return fields
}

// listenJournal is a unixgram socket standing in for journald's.
func listenJournal(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socket")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, path
}

func TestJournalGetsEachLineWithItsFields(t *testing.T) {
	sock, path := listenJournal(t)
	h := newHub(t, Options{Settings: Settings{Journal: true}, JournalSocket: path})
	ch := startChild(t, "script", "out:hello journal", "err:an error", "long:20000")
	c := h.Capture(ch.id("web", 4), ch.stdout, ch.stderr)
	ch.wait(t)
	waitDone(t, c)
	got := make(map[string]map[string]string)
	buf := make([]byte, 1<<16)
	for len(got) < 4 {
		sock.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(got), err)
		}
		f := parseJournal(t, buf[:n])
		got[f["MESSAGE"][:min(10, len(f["MESSAGE"]))]] = f
	}
	pid := fmt.Sprint(ch.cmd.Process.Pid)
	for msg, stream := range map[string]string{"hello jour": "stdout", "an error": "stderr", "abcdefghij": "stdout"} {
		f := got[msg]
		want := map[string]string{"PRIORITY": "6", "SYSLOG_IDENTIFIER": "web", "SYSLOG_PID": pid,
			"VIGIL_SERVICE": "web", "VIGIL_INSTANCE": "4", "VIGIL_STREAM": stream}
		for k, v := range want {
			if f[k] != v {
				t.Errorf("%q: %s=%q, want %q (all: %v)", msg, k, f[k], v, f)
			}
		}
	}
	// The long line was cut at DefaultMaxLine: two datagrams.
	if n := len(got["abcdefghij"]["MESSAGE"]); n != DefaultMaxLine {
		t.Errorf("first piece of the long line: %d bytes", n)
	}
	if st := c.Stats(); st.DroppedJournal != 0 || st.Lines != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestJournalFieldWithANewlineIsBinary(t *testing.T) {
	b := appendJournalField(nil, "MESSAGE", []byte("two\nlines"))
	b = appendJournalField(b, "X", []byte("plain"))
	f := parseJournal(t, b)
	if f["MESSAGE"] != "two\nlines" || f["X"] != "plain" || !bytes.HasPrefix(b, []byte("MESSAGE\n\x09\x00\x00\x00\x00\x00\x00\x00two\nlines\n")) {
		t.Errorf("encoded %q, decoded %v", b, f)
	}
}

// TestJournalStuckIsBounded: journald does not read (its queue fills);
// the capture goes on, the lines beyond the queue are dropped and counted,
// and Close gives up at its deadline.
func TestJournalStuckIsBounded(t *testing.T) {
	sock, path := listenJournal(t)
	h := New(Options{Settings: Settings{Journal: true}, JournalSocket: path, SinkQueue: 32 << 10})
	ch := startChild(t, "flood", "20000", "100")
	c := h.Capture(ch.id("web", 0), ch.stdout, nil)
	ch.wait(t)
	waitDone(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want the deadline", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Close took %v", d)
	}
	received := 0
	buf := make([]byte, 1<<16)
	for {
		sock.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := sock.Read(buf); err != nil {
			break
		}
		received++
	}
	st := c.Stats()
	if st.Lines != 20000 || st.DroppedJournal == 0 || uint64(received)+st.DroppedJournal < 20000 {
		t.Errorf("read %d lines, journal got %d and dropped %d", st.Lines, received, st.DroppedJournal)
	}
}
