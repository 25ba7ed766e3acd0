package main

import (
	"github.com/spf13/cobra"
)

// newProtocolCommand returns the parent of the commands that describe
// ktape's Kafka protocol layer. It has no flags or action of its own.
func newProtocolCommand(gopts *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "protocol",
		Short: "Inspect ktape's Kafka protocol layer",
		Long: `Inspect the Kafka protocol layer built into ktape: which API keys and
versions it can encode and decode.

` + exitStatusHelp(),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
		SuggestionsMinimumDistance: 2, // used by noArgs
	}
	cmd.AddCommand(newProtocolAPIsCommand(gopts))
	return cmd
}
