package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vigild/vigil/internal/statusview"
	"github.com/vigild/vigil/rpc"
)

// onThisHost reports whether process pid runs on this host, where a file it
// writes can be read: the process exists (signal 0 reaches it, or is
// refused for lack of permission).
func onThisHost(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// refusesInline reports whether a worker's failure is the original's
// refusal of inline output (its memory_dump: "Buffered output not
// supported!").
func refusesInline(err error) bool {
	var remote *rpc.RemoteError
	return errors.As(err, &remote) && strings.Contains(remote.Message, "Buffered output not supported")
}

// viaFile asks the worker to write the dump into the dump directory
// ("path"), then reads it from there. Without -o, a profile or trace stays
// there (its path is printed); otherwise the file is only the way the dump
// travels: it goes where the inline dump would have gone, and is removed.
// A worker that answers inline anyway is taken at its word.
func (d *dumper) viaFile(ctx context.Context, out io.Writer) error {
	kind, target := d.req.kind, d.target
	dir, err := filepath.Abs(d.req.dir)
	if err == nil {
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return failed(err, "%s of %s: dump directory %s: %v (--dir to choose another)", kind.what, target.Describe(), d.req.dir, err)
	}
	keep := kind.binary && d.req.file == ""
	base := strings.TrimSuffix(defaultDumpFile(kind, target, d.now), kind.ext)
	// The worker's own format is not known until it is read.
	path := filepath.Join(dir, base+".dump")
	if !keep {
		path = filepath.Join(dir, "."+base+".part")
	}
	if _, err := os.Lstat(path); err == nil {
		return failed(nil, "%s of %s: %s already exists (nothing written)", kind.what, target.Describe(), path)
	}
	reply, err := d.call(ctx, map[string]any{"path": path})
	if err != nil {
		os.Remove(path) // what a failed worker left, if anything
		var remote *rpc.RemoteError
		var e *exitError
		if errors.As(err, &remote) && remote.Class != "NoMethodError" && errors.As(err, &e) {
			return failed(err, "%v (asked to write it to %s itself, since it does not say it answers inline: it needs write access to %s; --dir to choose another)",
				e.err, path, dir)
		}
		return dumpError(kind, err)
	}
	if reply.Has("data") {
		os.Remove(path)
		return writeDump(out, d.o.output, kind, target, reply, d.req.file, d.req.dir, d.now)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return failed(err, "%s of %s: the worker answered %s, but the dump cannot be read: %v", kind.what, target.Describe(), withoutID(reply), err)
	}
	open := ""
	if isKindFormat(kind, data) {
		open = kind.open
	}
	if !keep {
		defer os.Remove(path)
		return deliver(out, kind, target, data, d.req.file, open)
	}
	if open != "" {
		// Its format is the kind's: name it so, unless that name is taken.
		named := filepath.Join(dir, base+kind.ext)
		if err := os.Link(path, named); err == nil {
			os.Remove(path)
			path = named
		}
	}
	shown := filepath.Join(d.req.dir, filepath.Base(path)) // as --dir names it
	writeLine(out, "wrote %s of %s to %s (%s), written by the worker", kind.what, target.Describe(), shown, statusview.FormatSize(float64(len(data))))
	if open != "" {
		writeLine(out, "%s %s", open, shellQuote(shown))
	} else {
		writeLine(out, "(in the worker's own format: not a Go %s)", strings.TrimPrefix(kind.ext, "."))
	}
	return nil
}

// isKindFormat reports whether data is in the format a Go worker gives the
// kind: a pprof profile is gzipped, an execution trace starts "go 1.".
func isKindFormat(kind dumpKind, data []byte) bool {
	switch kind.ext {
	case ".pprof":
		return bytes.HasPrefix(data, []byte{0x1f, 0x8b})
	case ".trace":
		return bytes.HasPrefix(data, []byte("go 1."))
	}
	return false
}
