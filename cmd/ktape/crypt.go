package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/ktape/ktape/repo"
	"github.com/spf13/cobra"
)

// readIdentities reads age private keys from file, one per line, as
// age-keygen writes them.
func readIdentities(file string) ([]age.Identity, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		// age's errors name the line, never the key.
		return nil, fmt.Errorf("identity file %s: %w", file, err)
	}
	return ids, nil
}

// readRecipients reads age public keys from file, one per line; blank
// lines and lines starting with # are skipped.
func readRecipients(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("recipients file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "age1") {
			return nil, fmt.Errorf("recipients file %s: line %d is not an age public key (age1…)", file, n)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("recipients file %s: %w", file, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("recipients file %s: no public key in it", file)
	}
	return out, nil
}

// keys are the age keys the command was given, nil when none.
func (o RepoOptions) keys(recipients []string) (*repo.Keys, error) {
	if o.IdentityFile == "" && len(recipients) == 0 {
		return nil, nil
	}
	k := &repo.Keys{Recipients: recipients}
	if o.IdentityFile != "" {
		ids, err := readIdentities(o.IdentityFile)
		if err != nil {
			return nil, err
		}
		k.Identities = ids
	}
	return k, nil
}

func newKeygenCommand(gopts *GlobalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "keygen --output FILE",
		Short: "Generate an age key pair for an encrypted repository",
		Long: `Generate an age X25519 key pair: write the private key (the identity) to
--output, readable by its owner only, and print the public key (the
recipient) on standard output. The file is the one age-keygen writes, so
age can use it too.

An encrypted repository uses two kinds of keys. Its recipients' keys read
everything: keep them offline, for restores and deep verifies. A writer's
key reads only the repository's metadata (manifests, indexes, restore
logs), which a backup needs to continue from the last one: it goes on the
hosts that run backups. Create the repository with

  ktape backup --encrypt-to RECIPIENT --identity-file WRITER-KEY ...

` + exitStatusHelp(),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeygen(output, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "`FILE` to write the private key to (must not exist)")
	markPath(cmd.Flags(), "output")
	return cmd
}

func runKeygen(output string, out io.Writer) error {
	if output == "" {
		return usageError{errors.New("--output: give the file to write the private key to")}
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	_, err = fmt.Fprintf(f, "# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(output)
		return fmt.Errorf("keygen: %s: %w", output, err)
	}
	_, err = fmt.Fprintln(out, id.Recipient())
	return err
}
