package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/internal/config"
)

// defaultConfig is the configuration file vigil run and vigil check read
// when --config is not given.
const defaultConfig = "vigil.toml"

func newCheckCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate vigil.toml and print the effective configuration, defaults filled in",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			usageDone(cmd)
			cfg, err := config.Load(path, os.Getenv)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			return cfg.Encode(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", defaultConfig, "the configuration file")
	return cmd
}
