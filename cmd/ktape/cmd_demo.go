package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ktape/ktape/internal/demo"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// maxDemoRecords bounds --records: the embedded cluster keeps the whole
// sample in memory, and the demo needed about 4.5 KiB of memory a record
// (880 MiB for 200000 records; 190 MiB for the default 20000).
const maxDemoRecords = 1_000_000

// DemoOptions hold the flags of the demo command.
type DemoOptions struct {
	// Repo is the demo's own repository, not the shared --repo of the
	// other commands: the config file's top-level repo does not set it
	// (demo.repo does), so that a demo never writes into the repository
	// a config file names for real backups.
	Repo    string
	Records int
}

// AddFlags registers the demo command's flags on fs.
func (o *DemoOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Repo, "repo", "", "back up into this repository (a directory, created if missing) and keep it; it must be empty or hold only earlier demos (default: a temporary directory, removed afterwards)")
	markPath(fs, "repo")
	fs.IntVar(&o.Records, "records", demo.DefaultRecords, "about how many sample records to write (kept in memory: about 4.5 KiB each)")
}

func newDemoCommand(gopts *GlobalOptions) *cobra.Command {
	var opts DemoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Back up an embedded Kafka cluster and check every record (no Kafka needed)",
		Long: `Run ktape's main job end to end with nothing installed. The demo starts an
embedded Kafka cluster inside this process (franz-go's kfake, 3 brokers on
127.0.0.1), writes sample topics into it (every codec, keys, headers, null
and large values, committed and aborted transactions, deleted records,
empty partitions, topic configs, consumer-group offsets), backs them up into
a repository, verifies the repository deeply (verify --deep), and reads
every backed-up record back from the repository with franz-go, comparing
offset, key, value, headers, timestamp, attributes and producer with what
franz-go reads from the cluster. Restoring into a second embedded cluster
(ktape restore) is not one of its steps yet.

Nothing outside this process is touched but the repository: a temporary
directory, removed afterwards (kept if verify or the check fails), or
--repo DIR, kept. A repository holding backups of a real cluster is
refused. In the --config file the demo's flags are in its demo section
(demo.repo, demo.records): the top-level repo of the other commands is not
the demo's; $KTAPE_REPO, like every variable, does set --repo.

Each step is printed as it completes; with --json, one "demo" object with
every figure and "passed". Any check that fails ends the demo with exit
code 1 and a message naming the topic, partition and offset (or segment)
of the first difference.

` + exitStatusHelp(),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), opts, *gopts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runDemo(ctx context.Context, opts DemoOptions, gopts GlobalOptions, out, errOut io.Writer) error {
	if opts.Records < 1 || opts.Records > maxDemoRecords {
		return usageError{fmt.Errorf("%s %d: from 1 to %d (the embedded cluster keeps the sample in memory, about 4.5 KiB a record)", gopts.Sources.of("records"), opts.Records, maxDemoRecords)}
	}
	// SIGINT or SIGTERM ends the demo through its context, so that it
	// closes the cluster and removes its temporary repository.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	do := demo.Options{Repo: opts.Repo, Records: opts.Records, Version: ktapeVersion(), Log: newLogger(errOut, gopts.JSON)}
	if !gopts.JSON {
		do.Progress = func(step string, s *demo.Summary) { printDemoStep(out, step, s) }
	}
	s, err := demo.Run(ctx, do)
	if errors.Is(err, demo.ErrForeignRepository) {
		// A value that cannot be used: say where it was set.
		err = usageError{fmt.Errorf("%s %s: %w", gopts.Sources.of("repo"), opts.Repo, err)}
	}
	if gopts.JSON {
		if jerr := json.NewEncoder(out).Encode(struct {
			MessageType string `json:"message_type"`
			Passed      bool   `json:"passed"`
			*demo.Summary
		}{"demo", err == nil, s}); jerr != nil {
			return errors.Join(err, jerr)
		}
		return err
	}
	if err != nil {
		return err
	}
	if s.Kept {
		fmt.Fprintf(out, "%-10s %s (kept; ktape ls --repo %s lists its backups)\n", "repository", s.Repository, s.Repository)
	} else {
		fmt.Fprintf(out, "%-10s %s (temporary, removed; keep one with --repo DIR)\n", "repository", s.Repository)
	}
	fmt.Fprintln(out, "demo passed: every check above was performed and found no difference")
	return nil
}

// printDemoStep prints one line, or two, for a step of the demo just
// completed.
func printDemoStep(w io.Writer, step string, s *demo.Summary) {
	line := func(format string, args ...any) {
		fmt.Fprintf(w, "%-10s "+format+"\n", append([]any{step}, args...)...)
	}
	more := func(format string, args ...any) { fmt.Fprintf(w, "%-10s "+format+"\n", append([]any{""}, args...)...) }
	switch step {
	case demo.StepCluster:
		line("kfake (embedded), %d brokers at %s, cluster id %s", len(s.Cluster.Brokers), strings.Join(s.Cluster.Brokers, " "), s.Cluster.ID)
	case demo.StepProduce:
		p := s.Produced
		line("%d topics, %d partitions: %d records, %s of keys, values and headers, in %.1fs",
			p.Topics, p.Partitions, p.Records, size(uint64(p.Bytes)), p.Seconds)
		more("codecs %s; %d transactions (%d committed, %d aborted, %d markers)",
			strings.Join(p.Codecs, ", "), p.Committed+p.Aborted, p.Committed, p.Aborted, p.Markers)
		more("%d records deleted (DeleteRecords); %d empty partitions; %d groups, %d committed offsets",
			p.Deleted, p.EmptyPartitions, p.Groups, p.GroupOffsets)
	case demo.StepBackup:
		b := s.Backup
		line("%s: %d partitions, %d batches, %s, stored as %s in %d segments; %d groups",
			b.ID, b.Partitions, b.Batches, size(uint64(b.DataBytes)), size(uint64(b.StoredBytes)), b.Segments, b.Groups)
		more("%.2fs, %.1f MB/s; %d records in the batches (markers, and deleted records sharing a batch with kept ones, included)",
			b.Seconds, b.MBPerSecond, b.Records)
	case demo.StepVerify:
		line("deep: %d segments, each one's SHA-256 and index, every batch's CRC-32C, every offset in a batch or a gap: no problems",
			s.Verify.Segments)
	case demo.StepCheck:
		c := s.Check
		line("%d partitions, each from its log start to its high watermark, as in the cluster", c.Partitions)
		more("%d records and %d markers read back from the repository by franz-go equal the cluster's", c.Records, c.Markers)
		more("(offset, key, value, headers, timestamp, attributes, producer); %d group offsets and %d topic configs as set", c.GroupOffsets, c.TopicConfigs)
	case demo.StepRestore:
		r := s.Restore
		line("into a second kfake cluster, with the groups: %d partitions, %d batches, %d records, %s in %.2fs (%.1f MB/s)",
			r.Partitions, r.Batches, r.Records, size(uint64(r.Bytes)), r.Seconds, r.MBPerSecond)
		more("%d batches left out (markers, aborted transactions); %d records read back by franz-go equal the source's", r.Skipped, r.RecordsCompared)
		more("(read_committed: key, value, headers, timestamp, in order); %d group offsets translated: each consumer resumes where it was", r.GroupOffsets)
	}
}
