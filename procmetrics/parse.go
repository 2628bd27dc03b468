package procmetrics

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// errFormat marks a file whose content is not what the kernel writes.
var errFormat = errors.New("unexpected format")

// statFields holds the fields of /proc/PID/stat this package uses, in the
// file's units (ticks, pages).
type statFields struct {
	comm      []byte // aliases the parsed buffer
	ppid      int
	pgrp      int
	minflt    uint64
	majflt    uint64
	utime     uint64
	stime     uint64
	starttime uint64 // ticks after boot
	vsize     uint64 // bytes
	rss       uint64 // pages
}

// parseStat parses the content of /proc/PID/stat. The command name (comm)
// may itself contain spaces and parentheses, so it is taken between the first
// '(' and the last ')'. Empty input (a process reaped between open and read)
// is an errFormat like any other truncation; callers check for it first.
func parseStat(b []byte) (statFields, error) {
	var s statFields
	l := bytes.IndexByte(b, '(')
	r := bytes.LastIndexByte(b, ')')
	if l < 0 || r < l || r+2 > len(b) {
		return s, fmt.Errorf("%w: no (comm) in stat", errFormat)
	}
	s.comm = b[l+1 : r]
	rest := b[r+2:]
	// Field numbers as in proc(5): field 3 (state) is the first after ')'.
	field := 3
	for field <= 24 {
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			return s, fmt.Errorf("%w: stat ends at field %d", errFormat, field)
		}
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		tok := rest[:end]
		rest = rest[end:]
		switch field {
		case 4, 5, 10, 12, 14, 15, 22, 23, 24:
			v, ok := parseUint(tok)
			if !ok {
				return s, fmt.Errorf("%w: stat field %d is %q", errFormat, field, tok)
			}
			switch field {
			case 4:
				s.ppid = int(v)
			case 5:
				s.pgrp = int(v)
			case 10:
				s.minflt = v
			case 12:
				s.majflt = v
			case 14:
				s.utime = v
			case 15:
				s.stime = v
			case 22:
				s.starttime = v
			case 23:
				s.vsize = v
			case 24:
				s.rss = v
			}
		}
		field++
	}
	return s, nil
}

// parseUint parses a non-empty unsigned decimal, trailing newline allowed.
func parseUint(b []byte) (uint64, bool) {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (^uint64(0)-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseStatmResident returns the second field (resident pages) of
// /proc/PID/statm.
func parseStatmResident(b []byte) (uint64, error) {
	b = bytes.TrimLeft(b, " ")
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return 0, fmt.Errorf("%w: statm has one field", errFormat)
	}
	b = bytes.TrimLeft(b[sp:], " ")
	if sp = bytes.IndexAny(b, " \n"); sp >= 0 {
		b = b[:sp]
	}
	v, ok := parseUint(b)
	if !ok {
		return 0, fmt.Errorf("%w: statm resident is %q", errFormat, b)
	}
	return v, nil
}

// rollup holds the smaps_rollup fields, in bytes.
type rollup struct {
	rss, pss, sharedClean, sharedDirty, privateClean, privateDirty uint64
	referenced, anonymous, swap, swapPss                           uint64
}

// parseSmapsRollup parses /proc/PID/smaps_rollup: a header line (the address
// range, ending "[rollup]") then "Key:   value kB" lines. Unknown keys are
// ignored (kernels add some: Pss_Dirty, Pss_Anon, KSM...), as are keys
// missing from older kernels. Empty input (kernel thread, zombie: no address
// space) gives all zeros.
func parseSmapsRollup(b []byte) (rollup, error) {
	var r rollup
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		var line []byte
		if nl < 0 {
			line, b = b, nil
		} else {
			line, b = b[:nl], b[nl+1:]
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		var dst *uint64
		switch string(line[:colon]) {
		case "Rss":
			dst = &r.rss
		case "Pss":
			dst = &r.pss
		case "Shared_Clean":
			dst = &r.sharedClean
		case "Shared_Dirty":
			dst = &r.sharedDirty
		case "Private_Clean":
			dst = &r.privateClean
		case "Private_Dirty":
			dst = &r.privateDirty
		case "Referenced":
			dst = &r.referenced
		case "Anonymous":
			dst = &r.anonymous
		case "Swap":
			dst = &r.swap
		case "SwapPss":
			dst = &r.swapPss
		default:
			continue // includes the header, whose "colon" is in the device field
		}
		v := bytes.TrimSpace(line[colon+1:])
		v = bytes.TrimSuffix(v, []byte(" kB"))
		n, ok := parseUint(bytes.TrimSpace(v))
		if !ok {
			return r, fmt.Errorf("%w: smaps_rollup line %q", errFormat, line)
		}
		*dst = kibToBytes(n)
	}
	return r, nil
}

// parseUptime returns the first field of /proc/uptime, seconds since boot.
func parseUptime(b []byte) (float64, error) {
	b = bytes.TrimSpace(b)
	if sp := bytes.IndexByte(b, ' '); sp >= 0 {
		b = b[:sp]
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, fmt.Errorf("%w: uptime %q", errFormat, b)
	}
	return v, nil
}

// appendCommand appends the command line in cmdline (NUL-separated
// arguments, usually NUL-terminated) to dst, arguments joined by spaces.
func appendCommand(dst, cmdline []byte) []byte {
	cmdline = bytes.TrimRight(cmdline, "\x00")
	for _, c := range cmdline {
		if c == 0 {
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}
