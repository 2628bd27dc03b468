package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pelletier/go-toml/v2"

	"github.com/vigild/vigil/internal/config"
)

// configSocket reads the supervisor's socket from the vigil.toml at path:
// supervisor.socket resolved against the file's directory, or
// supervisor.ipc beside the file when it sets none (as vigil run does).
//
// Only that key is read, and nothing of the rest is checked: an operator
// who may not read what the file names (an env_file, a user) still finds
// the socket, and a reload of a file with a wrong value elsewhere is
// refused by vigil run, which names the key and line. A file that is
// missing or is not TOML, or a socket that is not a string, is an error
// naming the file (and the line).
func configSocket(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("--config %s: no such file", path)
	}
	if err != nil {
		return "", fmt.Errorf("--config %s: %w", path, err)
	}
	var doc struct {
		Supervisor struct {
			Socket any `toml:"socket"`
		} `toml:"supervisor"`
	}
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, _ := de.Position()
			return "", fmt.Errorf("%s:%d: cannot read the supervisor's socket from it: %s (--socket to name the socket)", path, line, de.Error())
		}
		return "", fmt.Errorf("%s: cannot read the supervisor's socket from it: %w (--socket to name the socket)", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("--config %s: %w", path, err)
	}
	dir := filepath.Dir(abs)
	switch s := doc.Supervisor.Socket.(type) {
	case nil:
		return filepath.Join(dir, config.DefaultSocket), nil
	case string:
		if s == "" {
			return "", fmt.Errorf("%s: supervisor.socket is empty (--socket to name the socket)", path)
		}
		if filepath.IsAbs(s) {
			return filepath.Clean(s), nil
		}
		return filepath.Join(dir, s), nil
	default:
		return "", fmt.Errorf("%s: supervisor.socket is a %T, not a path (--socket to name the socket)", path, s)
	}
}
