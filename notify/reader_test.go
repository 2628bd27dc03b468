package notify

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestReader(t *testing.T) {
	long := strings.Repeat("a", MaxLine)
	tests := []struct {
		name    string
		in      string
		want    []Message
		skipped int
	}{
		{"empty", "", nil, 0},
		{"one", "{\"ready\":true}\n", []Message{{Ready: Bool(true)}}, 0},
		{"no final newline", "{\"status\":\"a\"}\n{\"ready\":true}", []Message{{Status: "a"}, {Ready: Bool(true)}}, 0},
		{"crlf and blanks", "\r\n  \n{\"healthy\":true}\r\n\n", []Message{{Healthy: true}}, 0},
		{"garbage between", "x\n{\"ready\":true}\n[]\n42\n{\"stopping\":true}\n{bad\n", []Message{{Ready: Bool(true)}, {Stopping: true}}, 4},
		{"wrong type", "{\"errno\":\"x\"}\n{\"errno\":3}\n", []Message{{Errno: 3}}, 1},
		{"line exactly MaxLine", "{\"status\":\"" + long[:MaxLine-14] + "\"}\n", []Message{{Status: long[:MaxLine-14]}}, 0},
		{"line over MaxLine", "{\"status\":\"" + long + "\"}\n{\"ready\":true}\n", []Message{{Ready: Bool(true)}}, 1},
		{"huge line at EOF", long + long + long, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A one-byte-at-a-time reader checks that lines are assembled.
			for _, r := range []io.Reader{strings.NewReader(tt.in), &oneByte{s: tt.in}} {
				rd := NewReader(r, nil)
				var got []Message
				for {
					m, err := rd.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, m)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
				if rd.Skipped() != tt.skipped {
					t.Fatalf("skipped %d, want %d", rd.Skipped(), tt.skipped)
				}
				if _, err := rd.Next(); err != io.EOF {
					t.Fatalf("after the end: want io.EOF again, got %v", err)
				}
			}
		})
	}
}

type oneByte struct{ s string }

func (o *oneByte) Read(p []byte) (int, error) {
	if o.s == "" {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = o.s[0]
	o.s = o.s[1:]
	return 1, nil
}

var errBroken = errors.New("broken")

type failingReader struct{ s string }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.s == "" {
		return 0, errBroken
	}
	n := copy(p, f.s)
	f.s = f.s[n:]
	return n, nil
}

func TestReaderError(t *testing.T) {
	rd := NewReader(&failingReader{s: "{\"ready\":true}\n{\"status\":\"partial\"}"}, nil)
	if m, err := rd.Next(); err != nil || !m.IsReady() {
		t.Fatalf("got %+v, %v", m, err)
	}
	// The partial last line is still delivered before the error.
	if m, err := rd.Next(); err != nil || m.Status != "partial" {
		t.Fatalf("got %+v, %v", m, err)
	}
	if _, err := rd.Next(); !errors.Is(err, errBroken) {
		t.Fatalf("want the read error wrapped, got %v", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add("{\"ready\":true}\ngarbage\n{\"status\":\"x\",\"k\":[1]}")
	f.Add("[]\n{}\n{\"errno\":-1}")
	f.Fuzz(func(t *testing.T, in string) {
		rd := NewReader(strings.NewReader(in), nil)
		for i := 0; ; i++ {
			m, err := rd.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if i > len(in) {
				t.Fatal("more messages than bytes")
			}
			// Every message read re-encodes to one line and reads back the same.
			b, err := m.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "\n") {
				t.Fatalf("multi-line encoding %q", b)
			}
			var back Message
			if err := back.UnmarshalJSON(b); err != nil {
				t.Fatalf("re-read %q: %v", b, err)
			}
		}
	})
}
