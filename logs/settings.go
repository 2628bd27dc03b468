package logs

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults.
const (
	// DefaultRingLines is how many lines of each stream of a process are
	// kept in memory.
	DefaultRingLines = 1000
	// DefaultMaxSize is the size at which a log file is rotated: 100 MiB.
	DefaultMaxSize = 100 << 20
	// DefaultKeep is how many rotated files are kept.
	DefaultKeep = 5
	// DefaultMaxLine is the longest line kept whole: longer lines are
	// split into pieces of this many bytes.
	DefaultMaxLine = 16 << 10
	// DefaultSinkQueue is how many bytes of lines each destination (the
	// console, each file, the journal) may have waiting before it drops.
	DefaultSinkQueue = 4 << 20
	// DefaultJournalSocket is journald's native socket.
	DefaultJournalSocket = "/run/systemd/journal/socket"
)

// The console formats.
const (
	// FormatText writes "service.instance | line".
	FormatText = "text"
	// FormatJSON writes one JSON object per line: {"time", "service",
	// "instance", "pid", "stream", "line"}.
	FormatJSON = "json"
)

// Settings say where a service's lines go. A plain value: the caller
// resolves its configuration (global, then per service) onto it.
type Settings struct {
	// Console writes the lines to the console (Options.Console).
	Console bool
	// Format is the console's format: FormatText ("" means it) or
	// FormatJSON.
	Format string
	// Dir, when set, writes the lines to files in that directory, one per
	// service, instance and stream: "web.0.stdout.log".
	Dir string
	// MaxSize is the size in bytes at which a file is rotated (0 =
	// DefaultMaxSize).
	MaxSize int64
	// Keep is how many rotated files are kept ("web.0.stdout.log.1" the
	// newest); 0 keeps none.
	Keep int
	// Compress gzips rotated files ("web.0.stdout.log.1.gz").
	Compress bool
	// Journal sends the lines to the systemd journal.
	Journal bool
	// RingLines is how many lines of each stream of a process are kept in
	// memory for queries (0 = DefaultRingLines), within about 1 MiB a
	// stream: fewer when the lines are long.
	RingLines int
}

// DefaultSettings are the settings of a configuration that says nothing:
// the console in text, no files, the ring's default size, DefaultKeep
// rotated files when files are on; and under systemd (when vigil's stderr
// is the journal, see [UnderJournal]) the journal instead of the console,
// which would only write the same lines into the journal a second time.
func DefaultSettings() Settings {
	journal := UnderJournal()
	return Settings{
		Console:   !journal,
		Format:    FormatText,
		MaxSize:   DefaultMaxSize,
		Keep:      DefaultKeep,
		Journal:   journal,
		RingLines: DefaultRingLines,
	}
}

// Validate says what is wrong with s, naming the field.
func (s Settings) Validate() error {
	switch s.Format {
	case "", FormatText, FormatJSON:
	default:
		return fmt.Errorf("format %q: want %q or %q", s.Format, FormatText, FormatJSON)
	}
	if s.MaxSize < 0 {
		return fmt.Errorf("max size %d: must not be negative", s.MaxSize)
	}
	if s.Keep < 0 {
		return fmt.Errorf("keep %d: must not be negative", s.Keep)
	}
	if s.RingLines < 0 {
		return fmt.Errorf("ring lines %d: must not be negative", s.RingLines)
	}
	return nil
}

func (s Settings) withDefaults() Settings {
	if s.Format == "" {
		s.Format = FormatText
	}
	if s.MaxSize == 0 {
		s.MaxSize = DefaultMaxSize
	}
	if s.RingLines == 0 {
		s.RingLines = DefaultRingLines
	}
	return s
}

// UnderJournal reports whether vigil's stderr is connected to the systemd
// journal: JOURNAL_STREAM ("DEVICE:INODE", set by systemd for a service
// whose output goes to the journal) names the file stderr is.
func UnderJournal() bool {
	return underJournal(os.Getenv("JOURNAL_STREAM"), os.Stderr)
}

func underJournal(env string, f *os.File) bool {
	devS, inoS, ok := strings.Cut(env, ":")
	if !ok {
		return false
	}
	dev, err1 := strconv.ParseUint(devS, 10, 64)
	ino, err2 := strconv.ParseUint(inoS, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == dev && st.Ino == ino
}

// Options configure a [Hub]. The zero value is usable: every service with
// [DefaultSettings], the console on os.Stdout.
type Options struct {
	// Settings apply to every service not in Services (zero: see
	// DefaultSettings; a Settings whose every field is zero counts as
	// unset).
	Settings Settings
	// Services holds settings per service.
	Services map[string]Settings
	// Console is where the console lines go (nil = os.Stdout). It is
	// written from one goroutine, whole lines at a time.
	Console io.Writer
	// JournalSocket is journald's socket (default DefaultJournalSocket).
	JournalSocket string
	// MaxLine is the longest line kept whole (0 = DefaultMaxLine); longer
	// ones are split, and each piece counts as a line.
	MaxLine int
	// SinkQueue bounds the bytes waiting for each destination (0 =
	// DefaultSinkQueue): the console, the journal, and 4 times as much for
	// the files, which share a queue.
	SinkQueue int
	// ReadDelay bounds the wait between two reads of a pipe, which
	// gathers a chatty child's lines into fewer reads (0: 100 ms;
	// negative: never wait). Within it, the wait follows the child's
	// pace: after a read that left the pipe empty, long enough to gather
	// 128 KiB, short enough that the pipe fills only if the child writes
	// 50 times faster than that pace (or faster than 200 MiB/s, if that is
	// less). A line's time is when it was read: up to this much after it
	// was written.
	ReadDelay time.Duration
	// Logger receives the hub's own problems (a file that cannot be
	// written, the journal gone); nil discards.
	Logger *slog.Logger

	now    func() time.Time
	noPoll bool // read with a goroutine per stream, as where there is no poller
}
