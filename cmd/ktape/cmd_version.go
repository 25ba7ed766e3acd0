package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is ktape's version. Release builds set it with
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/ktape
//
// When empty, ktapeVersion falls back to the module version recorded in the
// binary, then to "dev". Nothing assigns it at run time.
var version = ""

// ktapeVersion returns the version this binary reports.
func ktapeVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newVersionCommand(gopts *GlobalOptions) *cobra.Command {
	var opts VersionOptions
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print ktape's version, Go version and platform",
		Long: `Print the ktape version, the Go version it was built with, and the operating
system and architecture it was built for.

With --json, print one JSON object:

  {"message_type":"version","version":"v1.2.3","go_version":"go1.26.0",
   "go_os":"linux","go_arch":"amd64"}

` + exitStatusHelp(),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVersion(cmd.Context(), opts, *gopts, cmd.OutOrStdout())
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// VersionOptions hold the flags of the version command. It has none yet.
type VersionOptions struct{}

// AddFlags registers the version command's flags on fs.
func (o *VersionOptions) AddFlags(fs *pflag.FlagSet) {}

// versionInfo is what the version command reports; its JSON form is the
// --json output, whose fields may be added to but never changed.
type versionInfo struct {
	MessageType string `json:"message_type"` // always "version"
	Version     string `json:"version"`
	GoVersion   string `json:"go_version"`
	GoOS        string `json:"go_os"`
	GoArch      string `json:"go_arch"`
}

func runVersion(_ context.Context, _ VersionOptions, gopts GlobalOptions, stdout io.Writer) error {
	v := versionInfo{
		MessageType: "version",
		Version:     ktapeVersion(),
		GoVersion:   runtime.Version(),
		GoOS:        runtime.GOOS,
		GoArch:      runtime.GOARCH,
	}
	if gopts.JSON {
		return json.NewEncoder(stdout).Encode(v)
	}
	_, err := fmt.Fprintf(stdout, "ktape %s compiled with %s on %s/%s\n", v.Version, v.GoVersion, v.GoOS, v.GoArch)
	return err
}
