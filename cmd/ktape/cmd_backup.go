package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// BackupOptions hold the flags of the backup command.
type BackupOptions struct {
	Brokers     []string
	Topics      []string
	Exclude     []string
	Mode        string
	Compression string
	Isolation   string
	Memory      int64
}

// AddFlags registers the backup command's flags on fs.
func (o *BackupOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&o.Brokers, "brokers", nil, "bootstrap brokers, HOST:PORT[,...]")
	fs.StringArrayVar(&o.Topics, "topics", nil, "back up topics whose whole name matches this regular expression (repeatable; default all but internal)")
	fs.StringArrayVar(&o.Exclude, "exclude", nil, "leave out topics whose whole name matches this regular expression (repeatable)")
	fs.StringVar(&o.Mode, "mode", "snapshot", "snapshot (to the high watermarks at start); continuous is not available yet")
	fs.StringVar(&o.Compression, "compression", "auto", "segment framing: auto (zstd unless the batches are compressed), zstd, lz4 or none")
	fs.StringVar(&o.Isolation, "isolation", "read_uncommitted", "read_uncommitted (to the high watermark) or read_committed (to the last stable offset)")
	fs.Int64Var(&o.Memory, "memory", 256<<20, "memory budget in bytes for fetched data and segments being built")
}

func newBackupCommand(gopts *GlobalOptions) *cobra.Command {
	var ropts RepoOptions
	var opts BackupOptions
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up topics into a repository",
		Long: `Back up Kafka topics into a repository (created if the location is empty):
every selected partition from its log start to the high watermark it had
when the backup started. Batches are stored as they came off the wire; the
backup exists once its manifest is written, last.

With --json, one "backup_done" object with the backup id and totals.

` + exitStatusHelp(),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackup(cmd.Context(), ropts, opts, *gopts, cmd.OutOrStdout())
		},
	}
	ropts.AddFlags(cmd.Flags())
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runBackup(ctx context.Context, ropts RepoOptions, opts BackupOptions, gopts GlobalOptions, out io.Writer) error {
	if len(opts.Brokers) == 0 {
		return usageError{fmt.Errorf("no brokers: give --brokers HOST:PORT")}
	}
	if ropts.URL == "" {
		return usageError{fmt.Errorf("no repository: give --repo or set KTAPE_REPO")}
	}
	if opts.Mode != "snapshot" {
		return usageError{fmt.Errorf("--mode %q: only snapshot is available in this version", opts.Mode)}
	}
	bo := backup.Options{Compression: opts.Compression, Memory: opts.Memory, Version: ktapeVersion(), Bootstrap: opts.Brokers}
	switch opts.Compression {
	case "auto", "zstd", "lz4", "none":
	default:
		return usageError{fmt.Errorf("--compression %q: auto, zstd, lz4 or none", opts.Compression)}
	}
	switch opts.Isolation {
	case "read_uncommitted":
	case "read_committed":
		bo.Isolation = client.ReadCommitted
	default:
		return usageError{fmt.Errorf("--isolation %q: read_uncommitted or read_committed", opts.Isolation)}
	}
	for _, list := range []struct {
		flag string
		in   []string
		out  *[]*regexp.Regexp
	}{{"--topics", opts.Topics, &bo.Topics}, {"--exclude", opts.Exclude, &bo.Exclude}} {
		for _, s := range list.in {
			re, err := regexp.Compile(s)
			if err != nil {
				return usageError{fmt.Errorf("%s %q: %w", list.flag, s, err)}
			}
			*list.out = append(*list.out, re)
		}
	}
	st, err := storage.Open(ctx, ropts.URL)
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, true)
	if err != nil {
		return err
	}
	c, err := client.New(ctx, opts.Brokers, nil)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", strings.Join(opts.Brokers, ","), err)
	}
	defer c.Close()
	start := time.Now()
	m, stats, err := backup.Snapshot(ctx, c, r, bo)
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	if gopts.JSON {
		return json.NewEncoder(out).Encode(struct {
			MessageType string  `json:"message_type"`
			Backup      string  `json:"backup"`
			Topics      int     `json:"topics"`
			Partitions  int     `json:"partitions"`
			Batches     int64   `json:"batches"`
			Bytes       int64   `json:"bytes"`
			Segments    int     `json:"segments"`
			Seconds     float64 `json:"seconds"`
		}{"backup_done", m.ID, len(m.Topics), stats.Partitions, stats.Batches, stats.Bytes, stats.Segments, secs})
	}
	fmt.Fprintf(out, "backup %s: %d topics, %d partitions, %d batches, %s in %d segments, %.1fs\n",
		m.ID, len(m.Topics), stats.Partitions, stats.Batches, size(uint64(stats.Bytes)), stats.Segments, secs)
	return nil
}
