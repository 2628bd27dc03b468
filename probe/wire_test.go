package probe

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// readAll reads a response the way an attempt does: head, then body up to
// the limit.
func readAll(data string) (head, []byte, bool, error) {
	br := bufio.NewReaderSize(strings.NewReader(data), 4<<10)
	h, err := readHead(br)
	if err != nil {
		return h, nil, false, err
	}
	body, reusable := h.body(br)
	b, err := io.ReadAll(io.LimitReader(body, bodyLimit+1))
	return h, b, reusable && br.Buffered() == 0, err
}

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		status   int
		body     string
		reusable bool
		err      string
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true, ""},
		{"no reason", "HTTP/1.1 204\r\n\r\n", 204, "", true, ""},
		{"lf only", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", 200, "ok", true, ""},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3;x=y\r\n!!!\r\n0\r\nX-Trailer: 1\r\n\r\n",
			200, "ok!!!", true, ""},
		{"chunked beats length", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
			200, "ok", false, ""},
		{"te case", "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n0\r\n\r\n", 200, "", true, ""},
		{"to the end", "HTTP/1.1 200 OK\r\n\r\nall of it", 200, "all of it", false, ""},
		{"gzip to the end", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz", 200, "zzz", false, ""},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", false, ""},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true, ""},
		{"close", "HTTP/1.1 503 Busy\r\nConnection: Keep-Alive, close\r\nContent-Length: 4\r\n\r\nbusy", 503, "busy", false, ""},
		{"interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "", true, ""},
		{"304 ignores length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 304, "", true, ""},
		{"101", "HTTP/1.1 101 Switching Protocols\r\n\r\n", 101, "", false, ""},
		{"continuation", "HTTP/1.1 200 OK\r\nX: a\r\n  b\r\nContent-Length: 0\r\n\r\n", 200, "", true, ""},
		{"same length twice", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 200, "x", true, ""},
		{"bytes after", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy", 200, "x", false, ""},

		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", 0, "", false, "two Content-Lengths"},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx", 0, "", false, "Content-Length"},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, "", false, "Content-Length"},
		{"not http", "SSH-2.0-OpenSSH_9.6\r\n", 0, "", false, "status line"},
		{"http/2", "HTTP/2 200\r\n\r\n", 0, "", false, "status line"},
		{"status letters", "HTTP/1.1 2x0 OK\r\n\r\n", 0, "", false, "status line"},
		{"status 99", "HTTP/1.1 099 OK\r\n\r\n", 0, "", false, "status line"},
		{"no space", "HTTP/1.1 200OK\r\n\r\n", 0, "", false, "status line"},
		{"space in name", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", 0, "", false, "header line"},
		{"no colon", "HTTP/1.1 200 OK\r\nnonsense\r\n\r\n", 0, "", false, "header line"},
		{"cut head", "HTTP/1.1 200 OK\r\nContent-Len", 0, "", false, "unexpected EOF"},
		{"cut body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 200, "ab", false, "unexpected EOF"},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 200, "", false, "invalid byte in chunk length"},
		{"long line", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n", 0, "", false, "longer than 4096"},
		{"many lines", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X: 1\r\n", 101) + "\r\n", 0, "", false, "more than 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, body, reusable, err := readAll(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error with %q", err, tt.err)
				}
				if tt.status == 0 {
					return
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if h.status != tt.status || string(body) != tt.body || (tt.err == "" && reusable != tt.reusable) {
				t.Fatalf("got status %d body %q reusable %v, want %d %q %v", h.status, body, reusable, tt.status, tt.body, tt.reusable)
			}
		})
	}
}

func TestReadResponseLocation(t *testing.T) {
	h, _, _, err := readAll("HTTP/1.1 302 Found\r\nlocation:  /next?a=b \r\nContent-Length: 0\r\n\r\n")
	if err != nil || h.location != "/next?a=b" {
		t.Fatalf("got %q, %v", h.location, err)
	}
}

// FuzzReadResponse checks the reader against net/http's on what both
// accept: the same final status and the same body.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nT: 1\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\n\r\nnope",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 x\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, body, _, err := readAll(string(data))
		if err != nil {
			return
		}
		// net/http's ReadResponse returns interim responses; skip them as
		// readHead does.
		br := bufio.NewReader(bytes.NewReader(data))
		var resp *http.Response
		for {
			r, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
			if err != nil {
				return
			}
			if r.StatusCode >= 200 || r.StatusCode == 101 {
				resp = r
				break
			}
		}
		want, werr := io.ReadAll(io.LimitReader(resp.Body, bodyLimit+1))
		if resp.StatusCode != h.status {
			t.Fatalf("status %d, net/http %d", h.status, resp.StatusCode)
		}
		if werr != nil && !errors.Is(werr, io.ErrUnexpectedEOF) {
			return
		}
		if !bytes.Equal(body, want) {
			t.Fatalf("body %q, net/http %q", body, want)
		}
	})
}
