package probe

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http/httputil"
	"strconv"
)

// The response reader: what an HTTP probe needs of a response (its status,
// its Location, where its body ends, whether the connection stays open),
// read without allocating its headers. net/http's ReadResponse was a fifth
// of the CPU of an attempt, measured. Its limits: a line of the head must
// fit in the bufio.Reader (4 KiB), and a head has at most maxHeadLines.

// maxHeadLines bounds the header lines of one response.
const maxHeadLines = 100

// head is a response's status line and the headers that matter.
type head struct {
	status    int
	http10    bool
	close     bool  // Connection: close, or HTTP/1.0 without keep-alive
	length    int64 // Content-Length, or -1
	chunked   bool
	encoded   bool // a Transfer-Encoding ending in another coding: read to EOF
	location  string
	keepAlive bool // Connection: keep-alive (matters for HTTP/1.0)
}

// errMalformed wraps the errors of a response that is not HTTP/1.x.
var errMalformed = errors.New("malformed HTTP response")

// readHead reads a response's head, skipping interim (1xx) responses but
// 101.
func readHead(br *bufio.Reader) (head, error) {
	for {
		h, err := readOneHead(br)
		if err != nil || h.status >= 200 || h.status == 101 {
			return h, err
		}
	}
}

func readOneHead(br *bufio.Reader) (head, error) {
	h := head{length: -1}
	line, err := readLine(br)
	if err != nil {
		return h, err
	}
	// HTTP/1.1 200 OK
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[7] < '0' || line[7] > '9' ||
		line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return h, fmt.Errorf("%w: status line %q", errMalformed, truncate(line))
	}
	h.http10 = line[7] == '0'
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return h, fmt.Errorf("%w: status line %q", errMalformed, truncate(line))
		}
		h.status = h.status*10 + int(d-'0')
	}
	if h.status < 100 {
		return h, fmt.Errorf("%w: status line %q", errMalformed, truncate(line))
	}
	for n := 0; ; n++ {
		line, err := readLine(br)
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			break
		}
		if n == maxHeadLines {
			return h, fmt.Errorf("%w: more than %d header lines", errMalformed, maxHeadLines)
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // an obsolete continuation: of nothing we read
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return h, fmt.Errorf("%w: header line %q", errMalformed, truncate(line))
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || value[0] == '+' {
				return h, fmt.Errorf("%w: Content-Length %q", errMalformed, truncate(value))
			}
			if h.length >= 0 && h.length != n {
				return h, fmt.Errorf("%w: two Content-Lengths", errMalformed)
			}
			h.length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			// The last coding of the last such header decides: chunked
			// frames the body; another (but identity) leaves it to the
			// end of the connection.
			last := value
			if i := bytes.LastIndexByte(value, ','); i >= 0 {
				last = bytes.TrimSpace(value[i+1:])
			}
			h.chunked = bytes.EqualFold(last, []byte("chunked"))
			h.encoded = !h.chunked && !bytes.EqualFold(last, []byte("identity"))
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				switch {
				case bytes.EqualFold(tok, []byte("close")):
					h.close = true
				case bytes.EqualFold(tok, []byte("keep-alive")):
					h.keepAlive = true
				}
			}
		case bytes.EqualFold(name, []byte("Location")):
			h.location = string(value)
		}
	}
	if h.http10 {
		// Transfer codings are HTTP/1.1's: ignored, as net/http does.
		h.chunked, h.encoded = false, false
		h.close = h.close || !h.keepAlive
	}
	if h.chunked || h.encoded {
		// Transfer-Encoding overrides Content-Length; a server that sends
		// both is not to be trusted with the connection.
		if h.length >= 0 {
			h.close = true
		}
		h.length = -1
	}
	return h, nil
}

// readLine returns a line without its CRLF (or LF); the slice is valid
// until the next read of br.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("%w: a line longer than %d bytes", errMalformed, br.Size())
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// body returns a reader of h's body from br, and whether the connection
// can carry another request once that reader has reached EOF.
func (h head) body(br *bufio.Reader) (io.Reader, bool) {
	switch {
	case h.status < 200 || h.status == 204 || h.status == 304:
		return eofReader{}, !h.close && h.status != 101
	case h.chunked:
		return &chunkedBody{br: br, r: httputil.NewChunkedReader(br)}, !h.close
	case h.length >= 0:
		return &lengthBody{r: br, n: h.length}, !h.close
	default:
		// Delimited by the end of the connection.
		return br, false
	}
}

// lengthBody reads n bytes; an EOF before them is io.ErrUnexpectedEOF.
type lengthBody struct {
	r io.Reader
	n int64
}

func (l *lengthBody) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if errors.Is(err, io.EOF) && l.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// chunkedBody reads a chunked body and then its trailer section, so that
// the connection is left at the next response.
type chunkedBody struct {
	br   *bufio.Reader
	r    io.Reader
	done bool
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	if errors.Is(err, io.EOF) {
		for {
			line, err := readLine(c.br)
			if err != nil {
				return n, err
			}
			if len(line) == 0 {
				break
			}
		}
		c.done = true
	}
	return n, err
}
