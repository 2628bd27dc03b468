package probe

import (
	"context"
	"errors"
)

// ErrUnsupported is ExecRunner's error where it cannot run commands (not
// Linux).
var ErrUnsupported = errors.New("probe: exec probes need Linux")

// Runner runs an exec probe's command to its end and returns its exit
// status: the code it exited with, or 128+N when signal N killed it. err is
// non-nil when the command could not be started or waited for, or when ctx
// ended first; the exit status is then -1 unless known.
//
// When ctx is done (the probe's timeout, its removal, the scheduler's
// stop), the Runner must kill the command's whole process group with
// SIGKILL and return promptly, having reaped the command. argv[0] without a
// slash is looked up in PATH; env nil and dir "" are the Runner's defaults.
//
// A program that reaps its children itself (a child subreaper calling
// wait4(-1), as vigil's controller does) must give the Scheduler a Runner
// built on its own spawner: ExecRunner's wait would race with that reaper.
type Runner func(ctx context.Context, argv, env []string, dir string) (int, error)
