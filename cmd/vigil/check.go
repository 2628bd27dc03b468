package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/container"
	"github.com/vigild/vigil/internal/config"
	"github.com/vigild/vigil/internal/fdlimit"
	"github.com/vigild/vigil/supervisor"
)

// defaultConfig is the configuration file vigil run and vigil check read
// when --config is not given.
const defaultConfig = "vigil.toml"

// loadConfig loads the configuration; its errors are usage errors, and a
// missing file says how to name one. Several problems are listed one a
// line, in the file's order, after a line that counts them.
//
// What vigil run would refuse at start is refused here too: a program not
// found or not executable, a socket that cannot be made there (see
// config.Preflight), counts that do not fit under the process limits.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path, os.Getenv)
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("no configuration at %s: write one (see examples/quickstart/vigil.toml) or name it with --config FILE: %w", path, err)
	}
	if err == nil {
		err = cfg.Preflight()
	}
	if err == nil {
		err = checkRoom(cfg)
	}
	// One problem is a *config.Error; several are joined (errors.Join).
	if _, one := err.(*config.Error); !one {
		if multi, ok := err.(interface{ Unwrap() []error }); ok && len(multi.Unwrap()) > 1 {
			err = &configErrors{path: path, errs: multi.Unwrap()}
		}
	}
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return cfg, nil
}

// configErrors are the several problems of a configuration file.
type configErrors struct {
	path string
	errs []error
}

func (e *configErrors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems in %s:", len(e.errs), e.path)
	for _, err := range e.errs {
		b.WriteString("\n" + err.Error())
	}
	return b.String()
}

func (e *configErrors) Unwrap() []error { return e.errs }

func newCheckCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate vigil.toml and print the effective configuration, defaults filled in",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			usageDone(cmd)
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			for _, w := range []string{pipeWarning(cfg), connectionsWarning(cfg)} {
				if w != "" {
					fmt.Fprintln(cmd.ErrOrStderr(), "vigil: warning:", w)
				}
			}
			return cfg.Encode(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", defaultConfig, "the configuration file")
	return cmd
}

// processReserve is how many processes and threads vigil needs besides its
// workers: its own threads, the supervisor's and the guard's.
const processReserve = 64

// childPipes is how many pipes vigil run holds for each worker: its
// readiness, stdout and stderr.
const childPipes = 3

// pipeWarning says, when the workers' pipes alone fill the share of pipe
// memory the kernel holds vigil's user to (pipe-user-pages-soft, for a
// user without CAP_SYS_RESOURCE: root too in a default Docker container),
// what follows and what to do: past it,
// every new pipe of the user (the workers' own too, when they run as the
// same user) holds 8 KiB and none can grow. "" when they fit.
func pipeWarning(cfg *config.Config) string {
	share, per := container.PipePages()
	if share == 0 {
		return ""
	}
	workers := 1 // the supervisor
	for _, s := range cfg.Services {
		workers += s.Count
	}
	need := workers * childPipes * per
	if need <= share {
		return ""
	}
	return fmt.Sprintf("%s: vigil run's %d children (the workers and the supervisor) hold %d pipes of %d KiB (%d pages), past the %d pages of pipe memory uid %d may have (fs.pipe-user-pages-soft): beyond, each new pipe of uid %d holds 8 KiB, its workers' own too, and none grows; raise it to twice that, for the pipes that grow (sysctl fs.pipe-user-pages-soft=%d), or give vigil CAP_SYS_RESOURCE",
		cfg.Path, workers, workers*childPipes, per*os.Getpagesize()>>10, need, share, os.Getuid(), os.Getuid(), 2*need)
}

// descriptorReserve is how many descriptors vigil run needs besides those
// it holds for its children: its own files and sockets, the children being
// started, operators' and the metrics' connections, log files.
const descriptorReserve = 64

// connectionsWarning says, when supervisor.max_connections is more than
// the supervisor's descriptors allow (see supervisor.ServedConnections),
// that it will serve fewer (the supervisor says so too when it starts).
// "" when they fit.
func connectionsWarning(cfg *config.Config) string {
	limit, most := fdlimit.Max(), cfg.Supervisor.Limits.MaxConnections
	served := supervisor.ServedConnections(most, limit)
	if served >= most {
		return ""
	}
	return fmt.Sprintf("%s: supervisor.max_connections = %d is more than the supervisor's descriptors allow (RLIMIT_NOFILE: %d): it will serve at most %d connections at once; raise the limit (ulimit -n, LimitNOFILE=) or lower max_connections",
		cfg.Path, most, limit, served)
}

// checkRoom refuses counts that cannot fit under the limits in force: the
// process limits (RLIMIT_NPROC, a cgroup's pids.max), where vigil would
// fill the limit with workers and then fail to start the rest, or its own
// threads; and vigil run's descriptors (RLIMIT_NOFILE), where the workers
// that fit would start and the others fail and be retried for good.
func checkRoom(cfg *config.Config) error {
	children := 1 // the supervisor
	var counts []string
	for _, s := range cfg.Services {
		children += s.Count
		counts = append(counts, fmt.Sprintf("services.%s.count = %d", s.Name, s.Count))
	}
	need := children + processReserve
	for _, r := range container.ProcessRooms() {
		if need > r.Free {
			return fmt.Errorf("%s: the services need %d processes at least (%s, and %d for vigil itself), but %s leaves room for %d: lower the counts or raise the limit",
				cfg.Path, need, strings.Join(counts, ", "), 1+processReserve, r, max(r.Free, 0))
		}
	}
	// Against the limit, not what is free: at a reload, the running
	// children's descriptors are counted already.
	if limit := fdlimit.Max(); limit > 0 {
		if fds := children*container.DescriptorsPerChild + descriptorReserve; fds > limit {
			return fmt.Errorf("%s: vigil run needs %d descriptors at least (%d for each of its %d children: %s and the supervisor; and %d for itself), but RLIMIT_NOFILE: %d: lower the counts or raise the limit (ulimit -n, LimitNOFILE=)",
				cfg.Path, fds, container.DescriptorsPerChild, children, strings.Join(counts, ", "), descriptorReserve, limit)
		}
	}
	return nil
}
