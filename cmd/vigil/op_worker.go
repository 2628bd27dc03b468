package main

import "github.com/vigild/vigil/internal/statusview"

// workerHelp describes WORKER in the commands' help.
const workerHelp = `WORKER is a connection id or a unique prefix of one, a pid, or
SERVICE.INSTANCE (instances count from 0, as in vigil run's output).`

// resolveWorker finds the one worker that arg names; an unknown or
// ambiguous name is a usage error that lists the candidates.
func resolveWorker(v *statusview.View, arg string) (*statusview.Worker, error) {
	w, err := v.Resolve(arg)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return w, nil
}
