package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
)

func newProtocolAPIsCommand(gopts *GlobalOptions) *cobra.Command {
	var opts ProtocolAPIsOptions
	cmd := &cobra.Command{
		Use:   "apis",
		Short: "List the Kafka API keys and versions ktape can encode and decode",
		Long: `List every Kafka API key this build of ktape can encode and decode, sorted by
key: its name, the oldest and newest version supported, the first flexible
version (KIP-482 compact encodings and tagged fields; "-" if none), and where a
request must be sent (any broker, the partition leader, the group or
transaction coordinator, or the controller).

With --json, print one JSON document:

  {"message_type":"protocol_apis","apis":[
    {"key":0,"name":"Produce","min_version":0,"max_version":13,
     "flexible_from":9,"route":"leader"}, ...]}

  message_type   always "protocol_apis"
  apis           one object per API key, by ascending key:
    key            the API key (int16)
    name           the API name as in Kafka's message specs
    min_version    the oldest version ktape encodes and decodes
    max_version    the newest version ktape encodes and decodes
    flexible_from  the first flexible version, or null if never flexible
    route          "any", "leader", "group-coordinator", "txn-coordinator"
                   or "controller"

Fields may be added in later releases but are never changed or removed.

` + exitStatusHelp(),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProtocolAPIs(cmd.Context(), opts, *gopts, cmd.OutOrStdout())
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// ProtocolAPIsOptions hold the flags of the protocol apis command. It has
// none yet.
type ProtocolAPIsOptions struct{}

// AddFlags registers the protocol apis command's flags on fs.
func (o *ProtocolAPIsOptions) AddFlags(fs *pflag.FlagSet) {}

// protocolAPIsJSON is the --json output of the protocol apis command.
type protocolAPIsJSON struct {
	MessageType string            `json:"message_type"` // always "protocol_apis"
	APIs        []protocolAPIJSON `json:"apis"`
}

type protocolAPIJSON struct {
	Key          int16  `json:"key"`
	Name         string `json:"name"`
	MinVersion   int16  `json:"min_version"`
	MaxVersion   int16  `json:"max_version"`
	FlexibleFrom *int16 `json:"flexible_from"` // nil: never flexible
	Route        string `json:"route"`
}

func runProtocolAPIs(_ context.Context, _ ProtocolAPIsOptions, gopts GlobalOptions, stdout io.Writer) error {
	apis := slices.SortedFunc(slices.Values(api.All), func(a, b *protocol.API) int {
		return cmp.Compare(a.Key, b.Key)
	})
	if gopts.JSON {
		out := protocolAPIsJSON{MessageType: "protocol_apis", APIs: make([]protocolAPIJSON, 0, len(apis))}
		for _, a := range apis {
			j := protocolAPIJSON{
				Key:        a.Key,
				Name:       a.Name,
				MinVersion: a.MinVersion,
				MaxVersion: a.MaxVersion,
				Route:      a.Route.String(),
			}
			if a.FlexibleVersion != protocol.NotFlexible {
				f := a.FlexibleVersion
				j.FlexibleFrom = &f
			}
			out.APIs = append(out.APIs, j)
		}
		return json.NewEncoder(stdout).Encode(out)
	}

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tNAME\tMIN\tMAX\tFLEXIBLE\tROUTE")
	for _, a := range apis {
		flex := "-"
		if a.FlexibleVersion != protocol.NotFlexible {
			flex = fmt.Sprint(a.FlexibleVersion)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\n", a.Key, a.Name, a.MinVersion, a.MaxVersion, flex, a.Route)
	}
	return tw.Flush()
}
