package logs

import (
	"io"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"
)

// consoleChunk is how many formatted bytes the console sink gathers before
// one write.
const consoleChunk = 256 << 10

// console writes lines to one writer, each capture's in its format.
type console struct {
	*pump
	w      io.Writer
	logger *slog.Logger
	buf    []byte
	failed bool
}

func newConsole(w io.Writer, queue int, logger *slog.Logger) *console {
	c := &console{w: w, logger: logger}
	c.pump = newPump("console", queue, toConsole, c.write, nil)
	return c
}

// write formats the batches and writes them in chunks of whole lines.
func (c *console) write(batches []*batch) {
	if n := c.lost.Swap(0); n > 0 && len(batches) > 0 {
		// Said where the lines went missing, in the console's own format.
		msg := "vigil: " + strconv.FormatUint(n, 10) + " lines dropped: the console was not read fast enough"
		if batches[0].cap.json {
			c.buf = append(c.buf, `{"time":"`...)
			c.buf = time.Now().UTC().AppendFormat(c.buf, time.RFC3339Nano)
			c.buf = append(c.buf, `","service":"vigil","dropped":`...)
			c.buf = strconv.AppendUint(c.buf, n, 10)
			c.buf = append(c.buf, `,"line":`...)
			c.buf = strconv.AppendQuote(c.buf, msg)
			c.buf = append(c.buf, "}\n"...)
		} else {
			c.buf = append(append(c.buf, msg...), '\n')
		}
	}
	from := 0 // the batches whose lines are in buf
	for i, b := range batches {
		c.buf = b.cap.appendConsole(c.buf, b)
		if len(c.buf) >= consoleChunk || i == len(batches)-1 {
			c.flush(batches[from : i+1])
			from = i + 1
		}
	}
}

func (c *console) flush(batches []*batch) {
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	if err == nil {
		if c.failed {
			c.failed = false
			c.logger.Info("console written again")
		}
		return
	}
	for _, b := range batches {
		b.cap.dropped[toConsole].Add(uint64(b.lines))
	}
	if !c.failed {
		c.failed = true
		c.logger.Warn("console: lines lost, writing failed", "error", err)
	}
}

// appendConsole formats b's lines for the console in c's format.
func (c *Capture) appendConsole(dst []byte, b *batch) []byte {
	if !c.json {
		eachLine(b.data, func(line []byte) bool {
			dst = append(dst, c.prefix...)
			dst = append(dst, line...)
			dst = append(dst, '\n')
			return true
		})
		return dst
	}
	var ts [40]byte
	t := b.time.UTC().AppendFormat(ts[:0], jsonTime)
	middle := c.jsonMiddle[b.stream-1]
	eachLine(b.data, func(line []byte) bool {
		dst = append(dst, `{"time":"`...)
		dst = append(dst, t...)
		dst = append(dst, middle...)
		dst = appendJSONString(dst, line)
		dst = append(dst, "\"}\n"...)
		return true
	})
	return dst
}

// jsonTime is RFC 3339 in UTC with microseconds, fixed width.
const jsonTime = "2006-01-02T15:04:05.000000Z07:00"

// jsonMiddle is the fields of a JSON line between the time and the line's
// text: `","service":"web","instance":1,"pid":42,"stream":"stdout","line":"`.
func jsonMiddle(id Identity, s Stream) []byte {
	b := []byte(`","service":"`)
	b = appendJSONString(b, []byte(id.Service))
	b = append(b, `","instance":`...)
	b = strconv.AppendInt(b, int64(id.Instance), 10)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(id.PID), 10)
	b = append(b, `,"stream":"`...)
	b = append(b, s.String()...)
	b = append(b, `","line":"`...)
	return b
}

// appendJSONString appends s as the inside of a JSON string: quotes,
// backslashes and control characters escaped, bytes that are not UTF-8
// replaced by U+FFFD, as encoding/json does.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}
