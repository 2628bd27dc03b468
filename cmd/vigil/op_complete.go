package main

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// completionTimeout bounds the status call behind a shell completion.
const completionTimeout = time.Second

// completeWorkers returns a shell completion of WORKER (SERVICE.INSTANCE
// names, and service names too when withServices) for the argument at
// position index, asking the supervisor at --socket; before index, fixed
// completes the arguments.
func completeWorkers(o *opOptions, index int, withServices bool, fixed []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch {
		case len(args) < index:
			return fixed, cobra.ShellCompDirectiveNoFileComp
		case len(args) > index:
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		if o.resolveSocket() != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		c, v, err := o.fetchStatus(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c.Close()
		var names []string
		for _, w := range v.Workers {
			switch {
			case w.Service == "":
				if w.PID > 0 {
					names = append(names, strconv.Itoa(w.PID))
				}
				continue
			case !slices.Contains(names, w.Name()): // a registered name without instance: once
				names = append(names, w.Name())
			}
			if withServices && !slices.Contains(names, w.Service) {
				names = append(names, w.Service)
			}
		}
		slices.Sort(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeServices returns a shell completion of SERVICE arguments, asking
// the supervisor at --socket.
func completeServices(o *opOptions) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if o.resolveSocket() != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		c, v, err := o.fetchStatus(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c.Close()
		var names []string
		for _, s := range v.Services {
			if s.Name != "" && !slices.Contains(args, s.Name) {
				names = append(names, s.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
