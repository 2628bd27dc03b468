package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/internal/config"
)

// The supervisor's configuration: vigil run hands each supervisor it
// starts the document it validated (at its start or last reload) in a
// sealed memory file, so that a supervisor that restarts takes those
// settings, not whatever the file says by then (an edit not yet reloaded,
// or half written).

// supervisorDigest is a digest of what the supervisor takes from the
// configuration: the [supervisor] and [metrics] tables, and each service's
// name and graceful stop (the memory monitor's). A reload that changes it
// replaces the supervisor; one that does not leaves it alone.
func supervisorDigest(cfg *config.Config) string {
	type service struct {
		Name         string
		GracefulStop time.Duration
	}
	services := make([]service, len(cfg.Services))
	for i, s := range cfg.Services {
		services[i] = service{s.Name, s.GracefulStop.D()}
	}
	b, err := json.Marshal(struct {
		Supervisor config.Supervisor
		Metrics    config.Metrics
		Services   []service
	}{cfg.Supervisor, cfg.Metrics, services})
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// supervisorConfig is the document a supervisor is handed, with the
// digest of the configuration it came from.
type supervisorConfig struct {
	file   *os.File
	digest string
}

// supervisorConfigFor returns the document for cfg: prev when cfg's
// supervisor settings are those of prev (the supervisor's spec stays the
// same), else a new one (nil file where no memory file can be made: the
// supervisor reads the file then).
func supervisorConfigFor(cfg *config.Config, prev supervisorConfig) supervisorConfig {
	digest := supervisorDigest(cfg)
	if prev.digest == digest && prev.digest != "" {
		return prev
	}
	if cfg.Source == nil {
		return supervisorConfig{digest: digest}
	}
	f, err := sealedFile("vigil.toml", cfg.Source)
	if err != nil {
		return supervisorConfig{digest: digest}
	}
	return supervisorConfig{file: f, digest: digest}
}

// closeUnless closes c's file unless it is keep's.
func (c supervisorConfig) closeUnless(keep supervisorConfig) {
	if c.file != nil && c.file != keep.file {
		c.file.Close()
	}
}

// sealedFile is a memory file holding data, sealed against any change.
func sealedFile(name string, data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	const seals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("memfd seals: %w", err)
	}
	return f, nil
}

// readConfigFD reads the document handed as fd (from its start, whatever
// the offset the descriptor shares) and parses it as the file at path.
func readConfigFD(fd int, path string) (*config.Config, error) {
	f := os.NewFile(uintptr(fd), "config-fd")
	defer f.Close()
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("config: reading the document handed as descriptor %d: %w", fd, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return config.ParseFile(data, path, filepath.Dir(abs), os.Getenv)
}
