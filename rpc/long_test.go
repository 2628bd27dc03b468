package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// echoLine is an echo call of id whose line (without its newline) is
// exactly size bytes long.
func echoLine(id, size int) (line, value string) {
	prefix := fmt.Sprintf(`{"id":%d,"do":"echo","value":"`, id)
	value = strings.Repeat(string(rune('a'+id%26)), size-len(prefix)-2)
	return prefix + value + `"}`, value
}

// Lines around the sizes of the read chunks, sent in one go (so that a
// long line's end and the next lines share a chunk), keep their framing
// and their bytes.
func TestLinesAcrossChunks(t *testing.T) {
	a, b := socketPair(t)
	c := NewConn(a, Options{Accepted: true, Handlers: echoHandlers(), MaxInFlight: -1})
	running(t, c)
	peer := newRawPeer(t, b)
	sizes := []int{readChunk - 1, readChunk, readChunk + 1, 100, 2*readChunk - 1, 2 * readChunk, 2*readChunk + 1, 3*readChunk + 7, 50, readChunk}
	var all strings.Builder
	want := map[float64]string{}
	for i, n := range sizes {
		line, value := echoLine(2+2*i, n)
		all.WriteString(line + "\n")
		want[float64(2+2*i)] = value
	}
	go b.Write([]byte(all.String()))
	for range sizes {
		m := peer.recv()
		id, _ := m["id"].(float64)
		if v, _ := m["value"].(string); v != want[id] {
			t.Errorf("call %v: a value of %d bytes, want %d", id, len(v), len(want[id]))
		}
		delete(want, id)
	}
	if len(want) > 0 {
		t.Errorf("not answered: %v", len(want))
	}
}

// A long line whose first chunk arrives alone, filling it exactly, is
// read on into the next chunk once the rest comes.
func TestLongLineArrivingInParts(t *testing.T) {
	a, b := socketPair(t)
	c := NewConn(a, Options{Accepted: true, Handlers: echoHandlers()})
	running(t, c)
	peer := newRawPeer(t, b)
	line, value := echoLine(2, 2*readChunk+10)
	for _, part := range []string{line[:readChunk], line[readChunk : 2*readChunk-3], line[2*readChunk-3:] + "\n"} {
		peer.send(part)
		time.Sleep(20 * time.Millisecond)
	}
	if m := peer.recv(); m["value"] != value {
		t.Fatalf("a value of %d bytes, want %d", len(m["value"].(string)), len(value))
	}
	// A short line after it.
	peer.send(`{"id":4,"do":"echo","value":"x"}` + "\n")
	if m := peer.recv(); m["value"] != "x" {
		t.Fatalf("after the long line: %v", m)
	}
}

// A line of exactly the limit is read, over many chunks; one byte more
// closes the connection.
func TestLineAtTheLimit(t *testing.T) {
	for _, limit := range []int{readChunk - 1, readChunk, readChunk + 1, 3*readChunk + 100} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			a, b := socketPair(t)
			c := NewConn(a, Options{Accepted: true, Handlers: echoHandlers(), MaxLineSize: limit})
			errc := make(chan error, 1)
			go func() { errc <- c.Run(context.Background()) }()
			peer := newRawPeer(t, b)
			line, value := echoLine(2, limit)
			peer.send(line + "\n")
			if m := peer.recv(); m["value"] != value {
				t.Fatalf("a line at the limit: a value of %d bytes, want %d", len(m["value"].(string)), len(value))
			}
			line, _ = echoLine(4, limit+1)
			peer.send(line + "\n")
			peer.expectEOF()
			if err := <-errc; !errors.Is(err, ErrLineTooLong) {
				t.Fatalf("Run returned %v, want ErrLineTooLong", err)
			}
		})
	}
}

// A line over the limit with no newline at all is refused once the limit
// is passed, not when the line ends.
func TestEndlessLineIsRefused(t *testing.T) {
	a, b := socketPair(t)
	limit := 2*readChunk + 5
	c := NewConn(a, Options{Accepted: true, Handlers: echoHandlers(), MaxLineSize: limit})
	stop := running(t, c)
	peer := newRawPeer(t, b)
	go func() { _, _ = b.Write([]byte(`{"id":2,"do":"echo","value":"` + strings.Repeat("z", 4*readChunk))) }()
	peer.expectEOF() // within 10 s
	if err := stop(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("Run returned %v, want ErrLineTooLong", err)
	}
}

// A long line that is malformed, or a long reply that is, is skipped as
// any other: the connection goes on.
func TestLongBadLineIsSkipped(t *testing.T) {
	a, b := socketPair(t)
	c := NewConn(a, Options{Accepted: true, Handlers: echoHandlers()})
	running(t, c)
	peer := newRawPeer(t, b)
	long := strings.Repeat("v", 3*readChunk)
	for _, bad := range []string{
		`{"id":2,"do":"echo","value":"` + long + "\x01" + `"}`, // a control character deep in a string
		`{"id":2,"do":"echo","value":["` + long + `",]}`,       // a trailing comma
		`{"id":2,"do":"echo","value":"` + long + `"`,           // unclosed
	} {
		peer.send(bad + "\n")
	}
	peer.send(`{"id":4,"do":"echo","value":"` + long + "\xff\xfe" + `"}` + "\n") // invalid UTF-8: valid JSON, as for encoding/json
	if m := peer.recv(); m["id"] != 4.0 || !strings.HasPrefix(m["value"].(string), long) {
		t.Fatalf("after bad long lines: id %v", m["id"])
	}
}

// statusReply is a final reply listing n entries, with some white space
// around them when spaced, as another implementation might write it (no
// newline: it would end the line).
func statusReply(n int, spaced bool) string {
	list := string(statusLike(n))
	if spaced && n > 0 {
		list = "[ " + strings.ReplaceAll(list[1:len(list)-1], "},{", "} ,\r\t {") + " ]"
	}
	return `{"id":2,"finished":true,"note":"x","connections":` + list + `}`
}

// GetArray of a long array gives what Elements gives, from the index made
// as the line was parsed; and of any other array, by scanning it.
func TestGetArrayAgreesWithElements(t *testing.T) {
	weird := `{"s":"a\"],[{\\","n":[1,[2,{"k":"]"}]],"e":{}}`
	cases := map[string]string{
		"empty":      `{"a":[]}`,
		"spaced":     `{"a": [ ` + strings.Repeat(weird+" , ", indexAbove+5) + weird + ` ] }`,
		"objects":    `{"a":[` + strings.Repeat(weird+",", 2*indexAbove) + weird + `]}`,
		"strings":    `{"a":[` + strings.Repeat(`"\u00e9\"x,]",`, 500) + `"y"]}`,
		"numbers":    `{"a":[` + strings.Repeat("1,", 1000) + "1]}", // too dense to be indexed
		"nested":     `{"a":[` + strings.Repeat(`[[["x"],"yyyyyyyyyy"]],`, 100) + `[]]}`,
		"duplicate":  `{"a":[` + strings.Repeat(weird+",", 100) + `1],"b":0,"a":[` + strings.Repeat(weird+",", 80) + `2]}`,
		"duplicate2": `{"a":[` + strings.Repeat(weird+",", 100) + `1],"a":[1,2,3]}`,
	}
	for _, n := range []int{indexAbove - 1, indexAbove, indexAbove + 1, 1000} {
		cases[fmt.Sprint("status ", n)] = statusReply(n, false)
		cases[fmt.Sprint("status spaced ", n)] = statusReply(n, true)
	}
	for name, line := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := Parse([]byte(line))
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{"a", "connections"} {
				v, ok := m.Get(key)
				if !ok {
					continue
				}
				got, ok := m.GetArray(key)
				want := Elements(v)
				if !ok || len(got) != len(want) {
					t.Fatalf("%s: %d elements (%v), want %d", key, len(got), ok, len(want))
				}
				for i := range want {
					if string(got[i]) != string(want[i]) {
						t.Fatalf("%s: element %d is %q, want %q", key, i, got[i], want[i])
					}
					if !json.Valid(got[i]) {
						t.Fatalf("%s: element %d is invalid: %q", key, i, got[i])
					}
				}
			}
		})
	}
	// What is indexed: the long arrays whose elements are not tiny.
	for line, want := range map[string]int{
		statusReply(indexAbove, false):   0,
		statusReply(indexAbove+1, false): 1,
		cases["numbers"]:                 0,
		cases["duplicate"]:               2,
	} {
		m, _ := Parse([]byte(line))
		if len(m.arrays) != want {
			t.Errorf("%.40s…: %d arrays indexed, want %d", line, len(m.arrays), want)
		}
	}
}

// A call whose final reply is long (over many chunks) gets it whole, and
// its array indexed, with the calls around it.
func TestLongReply(t *testing.T) {
	for _, spaced := range []bool{false, true} {
		reply := statusReply(3000, spaced)
		want, _ := Parse([]byte(reply))
		wantElems, _ := want.GetArray("connections")
		x, y := socketPair(t)
		list, _ := want.Get("connections")
		server := NewConn(x, Options{Accepted: true, Handlers: Handlers{
			"status": func(ctx context.Context, call *Call) error { return call.FinishShared("connections", list) },
			"short":  func(ctx context.Context, call *Call) error { return call.Finish(map[string]int{"n": 1}) },
		}})
		running(t, server)
		client := NewConn(y, Options{})
		running(t, client)
		for range 3 {
			m, err := client.Call(context.Background(), "status", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			elems, ok := m.GetArray("connections")
			if !ok || len(elems) != len(wantElems) || len(m.arrays) != 1 {
				t.Fatalf("%d elements (%v), want %d; %d arrays indexed", len(elems), ok, len(wantElems), len(m.arrays))
			}
			for i := range elems {
				if string(elems[i]) != string(wantElems[i]) {
					t.Fatalf("element %d: %q, want %q", i, elems[i], wantElems[i])
				}
			}
			if m, err := client.Call(context.Background(), "short", nil, nil); err != nil || m.String() != `{"id":`+string(m.ID())+`,"finished":true,"n":1}` {
				t.Fatalf("short call after a long one: %v, %v", m, err)
			}
		}
	}
}

// The eight-bytes-at-a-time scan of a string stops exactly where a byte
// at a time would, wherever the special byte is and whatever follows it.
func TestPlainEndAgreesWithByteScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	special := []byte{'"', '\\', 0x00, 0x01, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff}
	for range 20000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			if rng.IntN(6) == 0 {
				b[i] = special[rng.IntN(len(special))]
			} else {
				b[i] = byte(0x20 + rng.IntN(0x60))
			}
		}
		from := 0
		if len(b) > 0 {
			from = rng.IntN(len(b) + 1)
		}
		want := from
		for want < len(b) && plain[b[want]] {
			want++
		}
		if got := plainEnd(b, from); got != want {
			t.Fatalf("plainEnd(%q, %d) = %d, want %d", b, from, got, want)
		}
	}
}

// Control characters, escapes and invalid UTF-8 inside a long run of plain
// string bytes, at every place in the eight-byte words and near the end of
// the line, are judged as encoding/json judges them.
func TestValidateLongStringRuns(t *testing.T) {
	inserts := []string{"\x00", "\x1f", "\x7f", "\xff", "\xc3", "é", `\`, `\n`, `\u00e9`, `\u00g9`, `\x`, `"`, `\"`, `\\`, "\t"}
	for _, ins := range inserts {
		for at := range 34 {
			for _, total := range []int{at + 1, 40, 200} {
				if total < at {
					continue
				}
				s := strings.Repeat("a", at) + ins + strings.Repeat("b", total-at)
				for _, line := range []string{`"` + s + `"`, `{"k":"` + s + `","n":1}`, `{"` + s + `":1}`, `{"a":["` + s + `"]}`} {
					want := json.Valid([]byte(line))
					if got := validate([]byte(line), nil, nil); got != want {
						t.Fatalf("validate(%q) = %v, encoding/json says %v", line, got, want)
					}
					if line[0] == '{' {
						if _, err := Parse([]byte(line)); (err == nil) != want {
							t.Fatalf("Parse(%q): %v, encoding/json says valid: %v", line, err, want)
						}
					}
				}
			}
		}
	}
}
