package supervisor

import (
	"fmt"
	"strings"
	"syscall"
)

// restartSignals are the signals restart may send to the controller.
var restartSignals = []struct {
	name string
	sig  syscall.Signal
}{
	{"INT", syscall.SIGINT},
	{"TERM", syscall.SIGTERM},
	{"HUP", syscall.SIGHUP},
	{"USR1", syscall.SIGUSR1},
	{"USR2", syscall.SIGUSR2},
	{"QUIT", syscall.SIGQUIT},
}

// ParseSignal returns the signal named by name: INT, TERM, HUP, USR1, USR2
// or QUIT, with or without the SIG prefix, in any case. Any other name is an
// error that names it and lists the accepted ones.
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "SIG")
	for _, s := range restartSignals {
		if s.name == n {
			return s.sig, nil
		}
	}
	return 0, fmt.Errorf("unknown signal %q (expected one of INT, TERM, HUP, USR1, USR2, QUIT)", name)
}

// SignalName returns the short name of a signal ParseSignal accepts, or the
// signal's own description.
func SignalName(sig syscall.Signal) string {
	for _, s := range restartSignals {
		if s.sig == sig {
			return s.name
		}
	}
	return sig.String()
}
