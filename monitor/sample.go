package monitor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigild/vigil/rpc"
)

// sampleWorker asks the worker for a memory sample ("memory_sample", or
// "memory_dump" when that fails before the timeout, as for a worker without
// it) and writes it under the dump directory.
func (m *Memory) sampleWorker(ctx context.Context, o stopOrder) {
	so := m.opts.MemorySample
	sctx, cancel := context.WithTimeout(ctx, so.Timeout)
	defer cancel()
	op := "memory_sample"
	reply, err := o.conn.Call(sctx, op, map[string]any{"duration": so.Duration.Seconds()}, nil)
	var remote *rpc.RemoteError
	if errors.As(err, &remote) {
		m.logger.Info("memory monitor: memory_sample failed, asking for memory_dump", "process_id", o.pid, "error", err)
		op = "memory_dump"
		reply, err = o.conn.Call(sctx, op, nil, nil)
	}
	if err != nil {
		m.logger.Warn("memory monitor: no memory sample", "process_id", o.pid, "operation", op, "error", err)
		return
	}
	path, err := writeSample(m.dumpDir(), o, op, reply)
	if err != nil {
		m.logger.Error("memory monitor: writing memory sample failed", "process_id", o.pid, "operation", op, "error", err)
		return
	}
	m.logger.Warn("memory monitor: memory sample written", "process_id", o.pid, "service", o.service,
		"reason", o.reason, "operation", op, "path", path)
}

func (m *Memory) dumpDir() string {
	if m.opts.DumpDirectory != "" {
		return m.opts.DumpDirectory
	}
	return os.TempDir()
}

// writeSample writes the data of a sample reply to a new file (0600) in
// dir and returns its path. A reply with a "path" and no "data" (the worker
// wrote the file itself) returns that path.
func writeSample(dir string, o stopOrder, op string, reply *rpc.Message) (string, error) {
	raw, ok := reply.Get("data")
	if !ok || string(raw) == "null" {
		if p, ok := reply.GetString("path"); ok {
			return p, nil
		}
		return "", fmt.Errorf("%s reply of process %d has no data: %.200s", op, o.pid, reply.String())
	}
	data := []byte(raw) // an object or array: kept as JSON
	ext := ".json"
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%s reply of process %d: data: %w", op, o.pid, err)
		}
		data, ext = []byte(s), ".txt"
		if enc, _ := reply.GetString("encoding"); enc == "base64" {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return "", fmt.Errorf("%s reply of process %d: base64 data: %w", op, o.pid, err)
			}
			data, ext = b, ".bin"
		}
	}
	if f, _ := reply.GetString("format"); f != "" && !strings.ContainsAny(f, "/\\. ") {
		ext = "." + f
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("dump directory: %w", err)
	}
	service := o.service
	if service == "" || strings.ContainsAny(service, "/\\") || strings.HasPrefix(service, ".") {
		service = "worker"
	}
	name := fmt.Sprintf("%s-%d-%s-%s%s", service, o.pid, time.Now().UTC().Format("20060102T150405.000000000Z"), op, ext)
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("memory sample: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return "", fmt.Errorf("memory sample: %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("memory sample: %s: %w", path, err)
	}
	return path, nil
}
