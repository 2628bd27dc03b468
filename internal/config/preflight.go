package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Preflight checks what `vigil run` needs of the machine before it starts
// anything, so that `vigil check` refuses what run would: every service's
// program exists and is executable (looked up in PATH when it has no
// slash, relative to the service's dir otherwise), every service's dir is
// a directory, a service with a user or group is run by root, and the
// supervisor's socket can be created (its directory exists; the path is
// not a directory). Problems are *Error values naming
// the key and its line, joined in the document's order, as Parse's are.
func (c *Config) Preflight() error {
	// The keys' lines come from the file the configuration was loaded from.
	v := &validator{path: c.Path, pos: positions{first: map[string]position{}, at: map[position][]string{}}}
	if c.Path != "" {
		if data, err := os.ReadFile(c.Path); err == nil {
			v.pos = indexPositions(data)
		}
	}
	sock := c.Supervisor.Socket
	if st, err := os.Stat(filepath.Dir(sock)); err != nil {
		v.fail([]string{"supervisor", "socket"}, "the socket's directory %s: %v", filepath.Dir(sock), plainErr(err))
	} else if !st.IsDir() {
		v.fail([]string{"supervisor", "socket"}, "the socket's directory %s is not a directory", filepath.Dir(sock))
	}
	if st, err := os.Stat(sock); err == nil && st.IsDir() {
		v.fail([]string{"supervisor", "socket"}, "%s is a directory, not a place for a socket", sock)
	}
	for _, s := range c.Services {
		key := func(k ...string) []string { return append([]string{"services", s.Name}, k...) }
		if st, err := os.Stat(s.Dir); err != nil {
			v.fail(key("dir"), "%s: %v", s.Dir, plainErr(err))
			continue
		} else if !st.IsDir() {
			v.fail(key("dir"), "%s is not a directory", s.Dir)
			continue
		}
		if (s.User != "" || s.Group != "") && os.Geteuid() != 0 {
			k := "user"
			if s.User == "" {
				k = "group"
			}
			v.fail(key(k), "vigil runs as uid %d: running a service as another user or group needs root", os.Geteuid())
		}
		if len(s.Command) == 0 {
			continue
		}
		if err := findProgram(s.Command[0], s.Dir); err != nil {
			v.fail(key("command"), "%v", err)
		}
	}
	return v.err()
}

// findProgram checks that prog can be executed: looked up in PATH when it
// has no slash, else relative to dir.
func findProgram(prog, dir string) error {
	if !strings.Contains(prog, "/") {
		if _, err := exec.LookPath(prog); err != nil {
			return fmt.Errorf("program %q not found in PATH (%s)", prog, os.Getenv("PATH"))
		}
		return nil
	}
	path := prog
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("program %s: %v", path, plainErr(err))
	case st.IsDir():
		return fmt.Errorf("program %s is a directory", path)
	case st.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("program %s is not executable (mode %v)", path, st.Mode().Perm())
	}
	return nil
}

// plainErr is an error without the path os already put in our message.
func plainErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
