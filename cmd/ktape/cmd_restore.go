package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/restore"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// RestoreOptions hold the flags of the restore command.
type RestoreOptions struct {
	Conn              ConnectOptions
	Backup            string
	Topics            []string
	Exclude           []string
	Remap             []string
	NoCreateTopics    bool
	ReplicationFactor int
	AllowNonEmpty     bool
	Memory            int64
}

// AddFlags registers the restore command's flags on fs.
func (o *RestoreOptions) AddFlags(fs *pflag.FlagSet) {
	o.Conn.AddFlags(fs)
	fs.StringVar(&o.Backup, "backup", "latest", "the backup to restore: its id, or latest")
	fs.StringArrayVar(&o.Topics, "topics", nil, "restore the backed-up topics whose whole name matches this regular expression (repeatable; default all)")
	fs.StringArrayVar(&o.Exclude, "exclude", nil, "leave out topics whose whole name matches this regular expression (repeatable)")
	fs.StringArrayVar(&o.Remap, "remap", nil, "restore topics matching SRC (a regular expression, whole name) as DST, which may use SRC's groups ($1): SRC=DST (repeatable; the first match applies)")
	fs.BoolVar(&o.NoCreateTopics, "no-create-topics", false, "fail instead of creating missing target topics")
	fs.IntVar(&o.ReplicationFactor, "replication-factor", 0, "replication factor of created topics (default: the source's)")
	fs.BoolVar(&o.AllowNonEmpty, "allow-nonempty", false, "restore into partitions that already hold records (they would hold both)")
	fs.Var(newSizeValue(&o.Memory, 256<<20), "memory", "memory budget for segments read and batches not yet acknowledged: bytes, or with a unit (512MiB); at least 8MiB")
}

func newRestoreCommand(gopts *GlobalOptions) *cobra.Command {
	var ropts RepoOptions
	var opts RestoreOptions
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a backup's topics into a cluster",
		Long: `Restore the topics of a backup (the newest one by default) into a cluster.
Each batch goes back as it was stored, its header rewritten (producer id,
sequence); keys, values, headers and timestamps arrive unchanged. Transaction
markers and aborted transactions are left out: the target holds what a
read_committed consumer of the source saw.

Missing topics are created with the source's partition count and configs.
Partitions that already hold records are refused unless --allow-nonempty.

This version restores whole partitions into the same partition numbers:
point-in-time windows, partition remapping, consumer-group offsets and
resuming an interrupted restore are not available yet.

With --json, one "restore_done" object with the totals.

` + exitStatusHelp(),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestore(cmd.Context(), ropts, opts, *gopts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	ropts.AddFlags(cmd.Flags())
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runRestore(ctx context.Context, ropts RepoOptions, opts RestoreOptions, gopts GlobalOptions, out, errOut io.Writer) error {
	seeds, err := opts.Conn.Seeds(gopts.Sources)
	if err != nil {
		return err
	}
	if opts.Memory < 8<<20 {
		return usageError{fmt.Errorf("%s %s: at least 8MiB (8388608)", gopts.Sources.of("memory"), formatSize(opts.Memory))}
	}
	if opts.ReplicationFactor < 0 || opts.ReplicationFactor > 32767 {
		return usageError{fmt.Errorf("%s %d: 1 to 32767, or 0 for the source's", gopts.Sources.of("replication-factor"), opts.ReplicationFactor)}
	}
	ro := restore.Options{NoCreateTopics: opts.NoCreateTopics, ReplicationFactor: int16(opts.ReplicationFactor),
		AllowNonEmpty: opts.AllowNonEmpty, Memory: opts.Memory, Log: newLogger(errOut, gopts.JSON)}
	if ro.Topics, err = compileAll(gopts, "topics", opts.Topics); err != nil {
		return err
	}
	if ro.Exclude, err = compileAll(gopts, "exclude", opts.Exclude); err != nil {
		return err
	}
	for _, s := range opts.Remap {
		src, dst, ok := strings.Cut(s, "=")
		if !ok || src == "" || dst == "" {
			return usageError{fmt.Errorf("%s %q: want SRC=DST", gopts.Sources.of("remap"), s)}
		}
		re, err := regexp.Compile(src)
		if err != nil {
			return usageError{fmt.Errorf("%s %q: %w", gopts.Sources.of("remap"), s, err)}
		}
		ro.Remap = append(ro.Remap, restore.Remap{From: re, To: dst})
	}
	softMemoryLimit(opts.Memory)
	dialer, err := opts.Conn.Dialer(gopts.Sources)
	if err != nil {
		return err
	}
	r, err := ropts.open(ctx)
	if err != nil {
		return err
	}
	var args []string
	if opts.Backup != "latest" {
		args = []string{opts.Backup}
	}
	m, err := backupOrNewest(ctx, r, args)
	if err != nil {
		return err
	}
	if _, err := restore.Plan(m, ro); err != nil {
		return usageError{err}
	}
	c, err := client.New(ctx, seeds, dialer)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", strings.Join(seeds, ","), err)
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	stats, err := restore.Run(ctx, c, r, m, ro)
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	if gopts.JSON {
		return json.NewEncoder(out).Encode(struct {
			MessageType   string  `json:"message_type"`
			Backup        string  `json:"backup"`
			Partitions    int     `json:"partitions"`
			TopicsCreated int     `json:"topics_created"`
			Batches       int64   `json:"batches"`
			Records       int64   `json:"records"`
			Bytes         int64   `json:"bytes"`
			Markers       int64   `json:"markers_skipped"`
			Aborted       int64   `json:"aborted_batches_skipped"`
			Undecided     int64   `json:"undecided_batches_skipped"`
			Renumbered    int64   `json:"renumbered_batches"`
			Seconds       float64 `json:"seconds"`
		}{"restore_done", m.ID, stats.Partitions, stats.TopicsCreated, stats.Batches, stats.Records, stats.Bytes,
			stats.Markers, stats.Aborted, stats.Undecided, stats.Renumbered, secs})
	}
	fmt.Fprintf(out, "restored backup %s: %d partitions, %d records in %d batches, %s, %.1fs; left out %d transaction markers, %d aborted and %d undecided transactional batches\n",
		m.ID, stats.Partitions, stats.Records, stats.Batches, size(uint64(stats.Bytes)), secs, stats.Markers, stats.Aborted, stats.Undecided)
	return nil
}
