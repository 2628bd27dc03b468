package main

import (
	"errors"

	"github.com/vigild/vigil/internal/statusview"
)

// workerHelp describes WORKER in the commands' help.
const workerHelp = `WORKER is SERVICE.INSTANCE (instances count from 0, as in vigil run's
output), the name a worker registered (the original's workers register a
name and no instance), a pid, or a connection id or a unique prefix of one.`

// resolveWorker finds the one worker that arg names. An unknown name
// exits 4 (exitNotFound), an empty or ambiguous one is a usage error; the
// message lists the candidates.
func resolveWorker(v *statusview.View, arg string) (*statusview.Worker, error) {
	w, err := v.Resolve(arg)
	switch {
	case err == nil:
		return w, nil
	case errors.Is(err, statusview.ErrNoMatch):
		return nil, &exitError{code: exitNotFound, err: err}
	default:
		return nil, &exitError{code: exitUsage, err: err}
	}
}
