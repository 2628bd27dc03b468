package notify

import (
	"bytes"
	"encoding/json"
	"log/slog"
)

// Parser parses a child's messages, one JSON object per line, from bytes
// fed to it as they come (a non-blocking pipe read when it has
// something), with the rules of Reader.Next, which uses one: empty and
// blank lines are skipped silently; garbage is logged at warn level,
// counted (see Skipped) and skipped: a line that is not a JSON object, one
// whose known fields have the wrong types, or one longer than MaxLine with
// its newline. A last line without a newline is a line once End is
// called.
//
// A Parser keeps only the start of a line not yet ended: between whole
// lines it holds no buffer (a controller has one per child). It is not safe for
// concurrent use; the zero Parser discards what it logs.
type Parser struct {
	line     []byte // the start of a line not yet ended
	skipping int    // while > 0, the bytes so far of a line too long, skipped up to its newline
	logger   *slog.Logger
	args     []any // added to each of its records
	skipped  int
}

// NewParser returns a Parser that logs skipped lines to logger (nil
// discards), with args (as slog's key-value pairs) added to each record:
// cheaper than a logger.With made for every parser, which preformats its
// attributes whether anything is logged or not.
func NewParser(logger *slog.Logger, args ...any) *Parser {
	return &Parser{logger: logger, args: args}
}

// Feed parses b, the next bytes of the input, and appends the messages of
// the lines it ends to msgs, which it returns. b is not kept.
func (p *Parser) Feed(b []byte, msgs []Message) []Message {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.carry(b)
			return msgs
		}
		switch {
		case p.skipping > 0:
			p.skip("line too long", slog.Int("bytes", p.skipping+i+1))
			p.skipping = 0
		case len(p.line) > 0:
			if len(p.line)+i+1 > MaxLine {
				p.skip("line too long", slog.Int("bytes", len(p.line)+i+1))
			} else {
				p.line = append(p.line, b[:i]...)
				msgs = p.parse(p.line, msgs)
			}
			p.line = nil
		case i+1 > MaxLine:
			p.skip("line too long", slog.Int("bytes", i+1))
		default:
			msgs = p.parse(b[:i], msgs)
		}
		b = b[i+1:]
	}
	return msgs
}

// carry keeps b, the start of a line (or more of it), for the next Feed;
// a line that reaches MaxLine without its newline is too long, and
// skipped up to its newline.
func (p *Parser) carry(b []byte) {
	if p.skipping > 0 {
		p.skipping += len(b)
		return
	}
	if len(p.line)+len(b) >= MaxLine {
		p.skipping = len(p.line) + len(b)
		p.line = nil
		return
	}
	if p.line == nil {
		// Room for a message or two: a line in pieces grows it rarely.
		p.line = make([]byte, 0, max(len(b), minBuffer))
	}
	p.line = append(p.line, b...)
}

// End ends the input: a last line without a newline is parsed as a line
// (its messages appended to msgs, which is returned). The Parser may then
// be fed a new input.
func (p *Parser) End(msgs []Message) []Message {
	switch {
	case p.skipping > 0:
		p.skip("line too long", slog.Int("bytes", p.skipping))
		p.skipping = 0
	case len(p.line) > 0:
		msgs = p.parse(p.line, msgs)
	}
	p.line = nil
	return msgs
}

// Skipped returns how many lines have been skipped as garbage.
func (p *Parser) Skipped() int { return p.skipped }

// readyLine is the readiness message in its usual form.
var readyLine = []byte(`{"ready":true}`)

// parse appends the message of one line (without its newline), if it is
// one, to msgs.
func (p *Parser) parse(line []byte, msgs []Message) []Message {
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 {
		return msgs
	}
	if bytes.Equal(trimmed, readyLine) {
		// What nearly every worker says, once per start: no need for
		// three passes of encoding/json (as the one below makes).
		ready := true
		return append(msgs, Message{Ready: &ready})
	}
	var m Message
	if err := json.Unmarshal(trimmed, &m); err != nil {
		p.skip("garbage line", slog.String("line", sample(trimmed)), slog.Any("error", err))
		return msgs
	}
	return append(msgs, m)
}

func (p *Parser) skip(msg string, attrs ...any) {
	p.skipped++
	if p.logger != nil {
		p.logger.Warn("notify: "+msg+" skipped", append(p.args[:len(p.args):len(p.args)], attrs...)...)
	}
}
