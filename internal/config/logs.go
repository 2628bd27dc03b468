package config

// fileLogs is the [logs] table, or a service's logs table.
type fileLogs struct {
	Console  *bool     `toml:"console"`
	Format   *string   `toml:"format"`
	Dir      *string   `toml:"dir"`
	MaxSize  *tomlSize `toml:"max_size"`
	Keep     *int64    `toml:"keep"`
	Compress *bool     `toml:"compress"`
	Journal  *bool     `toml:"journal"`
	Lines    *int64    `toml:"lines"`
}

// Limits of the logs tables.
const (
	// MinLogMaxSize is the smallest max_size.
	MinLogMaxSize = 4 << 10
	// MaxLogKeep is the most rotated files kept.
	MaxLogKeep = 1000
	// MaxLogLines is the most lines kept per stream of a process.
	MaxLogLines = 1 << 20
)

// Logs is where a service's output goes: the [logs] table, and for a
// service its logs table over it (a key the service sets wins). Every
// field is unset (nil, "" or 0) when the document says nothing, so that
// the caller's defaults apply (see package logs' DefaultSettings: the
// console in text, no files, files of 100 MiB with 5 kept, 1,000 lines;
// under systemd the journal instead of the console).
type Logs struct {
	// Console writes the lines to vigil's stdout.
	Console *bool
	// Format is the console's format: "text" or "json".
	Format string
	// Dir is the absolute directory of the log files; "" (set) means no
	// files.
	Dir *string
	// MaxSize is the size at which a file is rotated (at least 4 KiB).
	MaxSize Size
	// Keep is how many rotated files are kept (0 to 1000).
	Keep *int
	// Compress gzips rotated files.
	Compress *bool
	// Journal sends the lines to the systemd journal.
	Journal *bool
	// Lines is how many lines of each stream of each process are kept in
	// memory for vigil logs (1 to 1,048,576).
	Lines int
}

// logs validates a logs table at key, over base (the [logs] table, for a
// service's).
func (v *validator) logs(key []string, f *fileLogs, base Logs, dir string) Logs {
	l := base
	if f == nil {
		return l
	}
	k := func(name string) []string { return append(append([]string(nil), key...), name) }
	if f.Console != nil {
		l.Console = f.Console
	}
	if f.Format != nil {
		switch *f.Format {
		case "text", "json":
			l.Format = *f.Format
		default:
			v.fail(k("format"), "%q is not a console format: want \"text\" or \"json\"", *f.Format)
		}
	}
	if f.Dir != nil {
		d := *f.Dir
		if d != "" {
			d = resolve(dir, d)
		}
		l.Dir = &d
	}
	if f.MaxSize != nil {
		if s := v.size(k("max_size"), f.MaxSize, 0); s < MinLogMaxSize {
			v.fail(k("max_size"), "must be at least 4KiB, got %s", s)
		} else {
			l.MaxSize = s
		}
	}
	if f.Keep != nil {
		if *f.Keep < 0 || *f.Keep > MaxLogKeep {
			v.fail(k("keep"), "must be between 0 and %d, got %d", MaxLogKeep, *f.Keep)
		} else {
			n := int(*f.Keep)
			l.Keep = &n
		}
	}
	if f.Compress != nil {
		l.Compress = f.Compress
	}
	if f.Journal != nil {
		l.Journal = f.Journal
	}
	if f.Lines != nil {
		if *f.Lines < 1 || *f.Lines > MaxLogLines {
			v.fail(k("lines"), "must be between 1 and %d, got %d", MaxLogLines, *f.Lines)
		} else {
			l.Lines = int(*f.Lines)
		}
	}
	return l
}

// logsTable is a service's logs table (nil for none).
func (f *fileService) logsTable() *fileLogs {
	if f == nil {
		return nil
	}
	return f.Logs
}
