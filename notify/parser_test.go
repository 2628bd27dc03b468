package notify

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// parseAll feeds in to a Parser in pieces cut at cuts (increasing
// offsets), then ends it.
func parseAll(p *Parser, in string, cuts ...int) []Message {
	var msgs []Message
	last := 0
	for _, c := range cuts {
		msgs = p.Feed([]byte(in[last:c]), msgs)
		last = c
	}
	msgs = p.Feed([]byte(in[last:]), msgs)
	return p.End(msgs)
}

// TestParserPieces: whatever the pieces the input comes in, the messages
// and the lines skipped are those of the whole input at once.
func TestParserPieces(t *testing.T) {
	long := strings.Repeat("a", MaxLine)
	tests := []struct {
		name    string
		in      string
		want    []Message
		skipped int
	}{
		{"one", "{\"ready\":true}\n", []Message{{Ready: Bool(true)}}, 0},
		{"no final newline", "{\"status\":\"a\"}\n{\"ready\":true}", []Message{{Status: "a"}, {Ready: Bool(true)}}, 0},
		{"crlf and blanks", "\r\n  \n{\"healthy\":true}\r\n\n", []Message{{Healthy: true}}, 0},
		{"garbage between", "x\n{\"ready\":true}\n[]\n42\n{\"stopping\":true}\n{bad\n", []Message{{Ready: Bool(true)}, {Stopping: true}}, 4},
		{"line exactly MaxLine", "{\"status\":\"" + long[:MaxLine-14] + "\"}\n{\"ready\":true}\n", []Message{{Status: long[:MaxLine-14]}, {Ready: Bool(true)}}, 0},
		{"line over MaxLine", "{\"status\":\"" + long[:MaxLine-13] + "\"}\n{\"ready\":true}\n", []Message{{Ready: Bool(true)}}, 1},
		{"MaxLine bytes at EOF", long, nil, 1},
		{"MaxLine-1 bytes at EOF", "{\"status\":\"" + long[:MaxLine-14] + "\"}", []Message{{Status: long[:MaxLine-14]}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(what string, p *Parser, got []Message) {
				t.Helper()
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("%s: got %d messages %.200v, want %.200v", what, len(got), got, tt.want)
				}
				if p.Skipped() != tt.skipped {
					t.Fatalf("%s: skipped %d, want %d", what, p.Skipped(), tt.skipped)
				}
			}
			p := NewParser(nil)
			check("whole", p, parseAll(p, tt.in))
			// Every cut in two, then in three around the line ends.
			step := 1
			if len(tt.in) > 1000 {
				step = 997 // a prime: the cuts fall everywhere in a line
			}
			for i := 0; i <= len(tt.in); i += step {
				p := NewParser(nil)
				check("cut at "+strconv.Itoa(i), p, parseAll(p, tt.in, i))
				for j := i; j <= len(tt.in); j += 7 * step {
					p := NewParser(nil)
					check("cut at "+strconv.Itoa(i)+" and "+strconv.Itoa(j), p, parseAll(p, tt.in, i, j))
				}
			}
		})
	}
}

// TestParserLogs: garbage is logged at warn level with the logger's
// attributes, and counted; blank lines are not.
func TestParserLogs(t *testing.T) {
	var out bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&out, nil))
	p := NewParser(logger, "child", "web.0")
	got := parseAll(p, "\n \ngarbage\n{\"ready\":true}\n"+strings.Repeat("x", MaxLine+10)+"\n", 3, 20, 100)
	if len(got) != 1 || !got[0].IsReady() || p.Skipped() != 2 {
		t.Fatalf("got %v, skipped %d; want one ready message and 2 skipped", got, p.Skipped())
	}
	logs := out.String()
	for _, want := range []string{
		`level=WARN msg="notify: garbage line skipped" child=web.0 line=garbage`,
		`level=WARN msg="notify: line too long skipped" child=web.0 bytes=65547`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "\n"); n != 2 {
		t.Errorf("%d log lines, want 2:\n%s", n, logs)
	}
}

// TestParserHoldsNothingBetweenLines: a parser between whole lines keeps
// no buffer (a controller holds one per child), and End lets it start a
// new input.
func TestParserHoldsNothingBetweenLines(t *testing.T) {
	p := NewParser(nil)
	msgs := p.Feed([]byte("{\"sta"), nil)
	msgs = p.Feed([]byte("tus\":\"a\"}\n"), msgs)
	if len(msgs) != 1 || msgs[0].Status != "a" || p.line != nil {
		t.Fatalf("got %v, line %q: want one message, no line held", msgs, p.line)
	}
	msgs = p.Feed([]byte("{\"ready\":true}"), msgs[:0])
	msgs = p.End(msgs)
	if len(msgs) != 1 || !msgs[0].IsReady() {
		t.Fatalf("a last line without its newline: got %v", msgs)
	}
	if msgs = parseAll(p, "{\"healthy\":true}\n"); len(msgs) != 1 || !msgs[0].Healthy {
		t.Fatalf("after End: got %v", msgs)
	}
}

func FuzzParser(f *testing.F) {
	f.Add("{\"ready\":true}\ngarbage\n{\"status\":\"x\",\"k\":[1]}", uint16(5), uint16(17))
	f.Add("\r\n{}\n[]\n{\"errno\":-1}", uint16(0), uint16(1))
	f.Fuzz(func(t *testing.T, in string, a, b uint16) {
		whole := NewParser(nil)
		want := parseAll(whole, in)
		i, j := min(int(a), len(in)), min(int(b), len(in))
		if i > j {
			i, j = j, i
		}
		cut := NewParser(nil)
		got := parseAll(cut, in, i, j)
		if !reflect.DeepEqual(got, want) || cut.Skipped() != whole.Skipped() {
			t.Fatalf("cut at %d and %d: %v (skipped %d), whole: %v (skipped %d)", i, j, got, cut.Skipped(), want, whole.Skipped())
		}
	})
}

// The usual readiness line, which the parser reads without encoding/json,
// gives the message encoding/json gives, one of its own each time.
func TestParserReadyLine(t *testing.T) {
	var want Message
	if err := json.Unmarshal(readyLine, &want); err != nil {
		t.Fatal(err)
	}
	p := NewParser(nil)
	got := parseAll(p, " {\"ready\":true} \n{\"ready\":true}\n")
	if len(got) != 2 || !reflect.DeepEqual(got[0], want) || !reflect.DeepEqual(got[1], want) {
		t.Fatalf("messages %+v, want two of %+v", got, want)
	}
	if got[0].Ready == got[1].Ready {
		t.Error("two messages share their Ready")
	}
}
