package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a non-negative time.Duration written in TOML as a Go duration
// string: "30s", "1m30s", "100ms". The zero Duration means "none" where a
// key is optional.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns the Go duration string, e.g. "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string. A negative or unparsable
// value is an error.
func (d *Duration) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a Go duration such as \"30s\" or \"1m30s\"", string(text))
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", string(text))
	}
	*d = Duration(v)
	return nil
}

// Size is a non-negative number of bytes written in TOML as a string: a
// plain number of bytes ("1024"), or a number with a decimal unit (kB or
// KB, MB, GB, TB: powers of 1000) or a binary unit (KiB, MiB, GiB, TiB:
// powers of 1024), e.g. "500MiB", "1.5GiB", "10MB". A space may separate
// number and unit; a "B" alone means bytes. The zero Size means "none"
// where a key is optional.
type Size int64

// Size units.
const (
	Byte Size = 1
	KiB       = 1024 * Byte
	MiB       = 1024 * KiB
	GiB       = 1024 * MiB
	TiB       = 1024 * GiB
	KB        = 1000 * Byte
	MB        = 1000 * KB
	GB        = 1000 * MB
	TB        = 1000 * GB
)

var sizeUnits = map[string]Size{
	"": Byte, "B": Byte,
	"KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": TiB,
	"kB": KB, "KB": KB, "MB": MB, "GB": GB, "TB": TB,
}

// ParseSize parses a size as Size.UnmarshalText does.
func ParseSize(s string) (Size, error) {
	orig := s
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == '-' || s[i] == '+') {
		i++
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("invalid size %q: want bytes or a number with a unit such as \"500MiB\", \"1GiB\" or \"10MB\"", orig)
	}
	if strings.HasPrefix(num, "-") {
		return 0, fmt.Errorf("invalid size %q: must not be negative", orig)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(strings.TrimPrefix(num, "+"), 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return 0, fmt.Errorf("invalid size %q: too large", orig)
			}
			return 0, fmt.Errorf("invalid size %q: bad number %q", orig, num)
		}
		if n > math.MaxInt64/int64(mult) {
			return 0, fmt.Errorf("invalid size %q: too large", orig)
		}
		return Size(n) * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid size %q: bad number %q", orig, num)
	}
	v := math.Round(f * float64(mult))
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", orig)
	}
	return Size(v), nil
}

// String writes the size in the largest unit that divides it exactly:
// binary units first ("10MiB"), then decimal ones ("10MB"), else bytes
// ("1023"). ParseSize reads it back to the same value.
func (s Size) String() string {
	if s == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		size Size
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}, {"TB", TB}, {"GB", GB}, {"MB", MB}, {"kB", KB}} {
		if s%u.size == 0 {
			return strconv.FormatInt(int64(s/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalText writes s as String does.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a size; a negative or unparsable value is an error.
func (s *Size) UnmarshalText(text []byte) error {
	v, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
