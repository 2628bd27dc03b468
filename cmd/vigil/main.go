// Command vigil is a process supervisor: `vigil run` keeps services' workers
// alive, `vigil supervise` is the supervisor server they connect to, and the
// other subcommands are the operator's tools against its socket.

// vigil's own threads need not follow a change of its cgroup's CPU limit:
// the runtime would read the cgroup's files every second, waking an idle
// controller and supervisor for nothing.
//
//go:debug updatemaxprocs=0
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// Exit codes of every subcommand, the same for the same situation in
// each (the README's table; TestExitCodes checks them command by command).
const (
	exitOK          = 0
	exitFailed      = 1 // the operation failed, or a probe's answer is no
	exitUsage       = 2 // a usage error, or an invalid configuration
	exitUnreachable = 3 // the supervisor cannot be reached, or did not answer
	exitNotFound    = 4 // no worker or service by the name given
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// run executes the command line and returns the process's exit code.
func run(args []string) int {
	root := newRoot()
	ran := false // whether a command's own code ran: past flags and arguments
	root.PersistentPreRun = func(*cobra.Command, []string) { ran = true }
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "vigil:", err)
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case !ran: // cobra's own errors: unknown command or flag, bad arguments
		if cmd != nil {
			fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return exitUsage
	default:
		return exitFailed
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "vigil",
		Short: "A process supervisor: keeps workers alive, ready and healthy, and lets you look inside them",
		Long: `vigil keeps N copies of each worker alive, knows when they are ready and
healthy, restarts them gracefully or blue/green, kills the ones that leak
memory, and lets an operator look inside any worker through one socket.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// --version and -v print what `vigil version` prints.
		Version: versionString(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(newSuperviseCmd(), newVersionCmd(), newCheckCmd(), newRunCmd(), newGuardCmd())
	root.AddCommand(operatorCommands()...)
	return root
}

// usageDone marks a command whose arguments were valid: from then on, an
// error is the operation's, not a usage error.
func usageDone(cmd *cobra.Command) { cmd.SilenceUsage = true }
