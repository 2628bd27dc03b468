package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/vigild/vigil/internal/config"
)

// defaultConfig is the configuration file vigil run and vigil check read
// when --config is not given.
const defaultConfig = "vigil.toml"

// loadConfig loads the configuration; its errors are usage errors, and a
// missing file says how to name one.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path, os.Getenv)
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("no configuration at %s: write one (see examples/quickstart/vigil.toml) or name it with --config FILE: %w", path, err)
	}
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return cfg, nil
}

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
			return cfg.Encode(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", defaultConfig, "the configuration file")
	return cmd
}
