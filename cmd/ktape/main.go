// Command ktape backs up Kafka topics to a local directory or object storage
// and restores them.
//
// This package only wires flags, output and exit codes; the work is done by
// library packages that can be used and tested without cobra. main alone
// maps errors to exit codes, through the exitCodes table.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes ktape with the given arguments (without the program name),
// prints any error to stderr and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var gopts GlobalOptions
	root := newRootCommand(&gopts)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if args == nil {
		args = []string{} // a nil slice makes cobra read os.Args
	}
	root.SetArgs(args)

	cmd, err := root.ExecuteContextC(ctx)
	if gopts.stopProfile != nil {
		gopts.stopProfile()
	}
	code := exitCode(err)
	if err != nil {
		printError(stderr, gopts, cmd.CommandPath(), code, err)
	}
	return code
}

// GlobalOptions hold the flags that every command accepts. They are filled
// in by cobra and passed to each runX function explicitly.
type GlobalOptions struct {
	// JSON selects machine-readable output: a JSON document (or JSON lines
	// for streams) on stdout, and an exit_error object on stderr.
	JSON bool
	// Config is the YAML config file (--config or $KTAPE_CONFIG); empty for
	// none.
	Config string
	// Sources says where each flag set for this run got its value, for
	// error messages. Filled in by applyConfig.
	Sources sources
	// CPUProfile is a file to write a pprof CPU profile of the run to
	// (hidden --cpu-profile, for finding where time goes).
	CPUProfile  string
	stopProfile func()
}

// AddFlags registers the global flags on fs.
func (o *GlobalOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.JSON, "json", false, "print machine-readable JSON instead of text")
	fs.StringVar(&o.Config, "config", "", "YAML config `FILE` setting any flag (default $KTAPE_CONFIG); see README, Configuration")
	fs.StringVar(&o.CPUProfile, "cpu-profile", "", "write a pprof CPU profile to `FILE`")
	_ = fs.MarkHidden("cpu-profile")
	markShared(fs, "json")
}

func newRootCommand(gopts *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ktape",
		Short: "Back up and restore Apache Kafka topics",
		Long: `ktape backs up Apache Kafka topics to a local directory or to object storage
and restores them exactly. Record batches are stored as they came off the wire
and sent back as they were stored, with only their headers rewritten.

Output is text by default; --json prints JSON on stdout (each document or line
has a "message_type" field) and, on failure, an "exit_error" object on stderr.

Every flag can also be set in the environment, as KTAPE_ and its name in
capitals with underscores (KTAPE_BROKERS, KTAPE_SASL_PASSWORD), or in a YAML
file named by --config or KTAPE_CONFIG. The command line wins over the
environment, which wins over the file.

` + exitStatusHelp(),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
		SuggestionsMinimumDistance: 2,    // used by noArgs
		SilenceErrors:              true, // run prints errors, once, in one format
		SilenceUsage:               true,
		// The environment and the config file fill in what the command line
		// left unset. Subcommands must not set their own PersistentPreRunE:
		// cobra would run theirs instead of this one.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := applyConfig(cmd, gopts); err != nil {
				return err
			}
			return gopts.startProfile()
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{err}
	})
	gopts.AddFlags(cmd.PersistentFlags())

	cmd.AddCommand(
		newVersionCommand(gopts),
		newProtocolCommand(gopts),
		newBackupCommand(gopts),
		newRestoreCommand(gopts),
		newLsCommand(gopts),
		newDescribeCommand(gopts),
		newVerifyCommand(gopts),
		newDemoCommand(gopts),
		newKeygenCommand(gopts),
	)
	return cmd
}

// startProfile starts the CPU profile --cpu-profile asks for; run stops
// it once the command returns.
func (o *GlobalOptions) startProfile() error {
	if o.CPUProfile == "" {
		return nil
	}
	f, err := os.Create(o.CPUProfile)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile %s: %w", o.CPUProfile, err)
	}
	o.stopProfile = func() {
		pprof.StopCPUProfile()
		f.Close()
	}
	return nil
}

// exitCodes is the one table from errors to exit codes. It is printed in the
// root command's help and in README.md; a test keeps README.md in step.
// Codes are a contract with scripts: add rows, never renumber them.
var exitCodes = []struct {
	code  int
	doc   string
	match func(error) bool // nil: matched by exitCode's fallback rules
}{
	{0, "success", nil},
	{1, "error: the command failed (the message says what and where)", nil},
	{2, "usage error: unknown command, flag or argument, or an invalid value in a flag, environment variable or config file", isUsageError},
	{3, "damage: verify found objects of a backup missing or corrupt (each one is printed)", isDamage},
	{130, "interrupted: a snapshot backup stopped by SIGINT/SIGTERM; its progress is in a checkpoint and running it again resumes", isInterrupted},
}

// interrupted marks a run stopped by a signal, with its progress kept.
type interrupted struct{ error }

func (e interrupted) Unwrap() error { return e.error }

func isInterrupted(err error) bool {
	var i interrupted
	return errors.As(err, &i)
}

// exitCode returns the exit code for err: 0 for nil, the first row of
// exitCodes whose match accepts err, else 1.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	for _, e := range exitCodes {
		if e.match != nil && e.match(err) {
			return e.code
		}
	}
	return 1
}

// exitStatusHelp renders exitCodes as the EXIT STATUS section of help texts.
func exitStatusHelp() string {
	var b strings.Builder
	b.WriteString("EXIT STATUS\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %d  %s\n", e.code, e.doc)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// usageError marks an error in the command line itself: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func isUsageError(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// noArgs is cobra.NoArgs, returning a usageError that names the command and,
// for a parent command, suggests the closest subcommand.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return usageError{errors.New(msg)}
	}
	return usageError{fmt.Errorf("%q takes no arguments, got %q", cmd.CommandPath(), args)}
}

// printError writes err to w: a line of text, followed for usage errors by a
// pointer to the help of the command that failed (cmdPath); under --json an
// exit_error object instead.
func printError(w io.Writer, gopts GlobalOptions, cmdPath string, code int, err error) {
	if gopts.JSON {
		_ = json.NewEncoder(w).Encode(struct {
			MessageType string `json:"message_type"`
			Code        int    `json:"code"`
			Message     string `json:"message"`
		}{"exit_error", code, err.Error()})
		return
	}
	fmt.Fprintf(w, "ktape: %v\n", err)
	if isUsageError(err) {
		fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmdPath)
	}
}
