package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// BackupOptions hold the flags of the backup command.
type BackupOptions struct {
	Conn        ConnectOptions
	Topics      []string
	Exclude     []string
	Mode        string
	Compression string
	Isolation   string
	Memory      int64

	CheckpointInterval time.Duration
	Full               bool
	Fresh              bool
	SkipGroups         bool
	MetricsAddr        string
	ProgressInterval   time.Duration
	EncryptTo          []string
	EncryptToFile      string
	Workers            WorkersOptions
}

// AddFlags registers the backup command's flags on fs.
func (o *BackupOptions) AddFlags(fs *pflag.FlagSet) {
	o.Conn.AddFlags(fs)
	fs.StringArrayVar(&o.Topics, "topics", nil, "back up topics whose whole name matches this regular expression (repeatable; default all but internal)")
	fs.StringArrayVar(&o.Exclude, "exclude", nil, "leave out topics whose whole name matches this regular expression (repeatable)")
	fs.Var(newEnumValue(&o.Mode, backup.Snapshot, false, backup.Snapshot, backup.Continuous), "mode", "snapshot (to the high watermarks at start, then exit) or continuous (follow the topics until SIGINT/SIGTERM)")
	fs.Var(newEnumValue(&o.Compression, "auto", false, "auto", "zstd", "lz4", "none"), "compression", "segment framing: auto (zstd unless the batches are compressed), zstd, lz4 or none")
	fs.Var(newEnumValue(&o.Isolation, "read_uncommitted", false, "read_uncommitted", "read_committed"), "isolation", "read_uncommitted (to the high watermark) or read_committed (to the last stable offset)")
	fs.Var(newSizeValue(&o.Memory, 256<<20), "memory", "memory budget for fetched data and segments being built and stored: bytes, or with a unit (512MiB, 2GiB); at least 8MiB")
	fs.DurationVar(&o.CheckpointInterval, "checkpoint-interval", time.Minute, "how often progress is committed as a checkpoint that a restarted backup resumes from")
	fs.BoolVar(&o.Full, "full", false, "back up every partition from its log start, not from where the repository's newest backup ended")
	fs.BoolVar(&o.Fresh, "fresh", false, "start a new run even if the repository holds an unfinished one (which is otherwise resumed)")
	fs.BoolVar(&o.SkipGroups, "skip-groups", false, "do not record consumer-group offsets")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics (ktape_backup_*) at http://HOST:PORT/metrics while the backup runs")
	fs.DurationVar(&o.ProgressInterval, "progress-interval", 30*time.Second, "how often progress is logged when standard error is not a terminal (0: never)")
	fs.StringArrayVar(&o.EncryptTo, "encrypt-to", nil, "create the repository encrypted to this age public key (age1…; repeatable); needs --identity-file, the writer's own key")
	fs.StringVar(&o.EncryptToFile, "encrypt-to-file", "", "`FILE` of age public keys, one per line, to create the repository encrypted to")
	markPath(fs, "encrypt-to-file")
	o.Workers.AddFlags(fs, "backup", true)
}

func newBackupCommand(gopts *GlobalOptions) *cobra.Command {
	var ropts RepoOptions
	var opts BackupOptions
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up topics into a repository",
		Long: `Back up Kafka topics into a repository (created if the location is empty).
Batches are stored as they came off the wire; the backup exists once its
manifest is written, last.

A snapshot backs up every selected partition to the high watermark it had
when the backup started, then exits. A continuous backup follows the topics
until SIGINT or SIGTERM, then writes its manifest and exits 0.

Each partition continues where the repository's newest backup of the
cluster ended and references its segments (--full starts from the log
start). Progress is committed as a checkpoint every --checkpoint-interval:
a backup that is killed continues from its newest checkpoint when started
again (--fresh starts over). A first SIGINT stops a snapshot at a
checkpoint (exit 130, resumable); a second abandons it at once.

With --workers-group, several processes share one snapshot: each backs up
the partitions Kafka's group protocol assigns it, checkpointed in the
shared repository; partitions of a worker that stops or dies move to the
others, which continue where it checkpointed. The worker that finds every
partition done writes the manifest, and every worker prints it and exits 0.
Start every worker with the same options. "ktape backup finalize" writes
the manifest if the workers were all stopped before they could.

With --json, one "backup_done" object with the backup id and totals.

Any flag can instead be set in the environment (--sasl-password as
KTAPE_SASL_PASSWORD) or in the --config file: connection and repository
flags at its top level (brokers, repo, tls.ca, sasl.mechanism), the others
in its backup section (backup.memory: 1GiB). The command line wins over the
environment, which wins over the file. Keep passwords out of the command
line: other users can see it.

` + exitStatusHelp(),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackup(cmd.Context(), ropts, opts, *gopts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	ropts.AddFlags(cmd.Flags())
	opts.AddFlags(cmd.Flags())
	cmd.AddCommand(newBackupFinalizeCommand(gopts))
	return cmd
}

func runBackup(ctx context.Context, ropts RepoOptions, opts BackupOptions, gopts GlobalOptions, out, errOut io.Writer) error {
	seeds, err := opts.Conn.Seeds(gopts.Sources)
	if err != nil {
		return err
	}
	if ropts.URL == "" {
		return usageError{fmt.Errorf("no repository: give --repo or set KTAPE_REPO")}
	}
	if opts.Mode != backup.Snapshot && opts.Mode != backup.Continuous {
		return usageError{fmt.Errorf("%s %q: snapshot or continuous", gopts.Sources.of("mode"), opts.Mode)}
	}
	if opts.CheckpointInterval <= 0 {
		return usageError{fmt.Errorf("%s %v: must be positive", gopts.Sources.of("checkpoint-interval"), opts.CheckpointInterval)}
	}
	if opts.Memory < 8<<20 {
		return usageError{fmt.Errorf("%s %s: at least 8MiB (8388608)", gopts.Sources.of("memory"), formatSize(opts.Memory))}
	}
	if err := opts.Workers.check(gopts); err != nil {
		return err
	}
	softMemoryLimit(opts.Memory)
	dialer, err := opts.Conn.Dialer(gopts.Sources)
	if err != nil {
		return err
	}
	dialer.MaxResponseSize = responseLimit(opts.Memory)
	bo := backup.Options{Mode: opts.Mode, Compression: opts.Compression, Memory: opts.Memory, CheckpointInterval: opts.CheckpointInterval,
		Full: opts.Full, Fresh: opts.Fresh, SkipGroups: opts.SkipGroups, Version: ktapeVersion(), Bootstrap: seeds, Workers: opts.Workers.backupWorkers()}
	switch opts.Compression {
	case "auto", "zstd", "lz4", "none":
	default:
		return usageError{fmt.Errorf("%s %q: auto, zstd, lz4 or none", gopts.Sources.of("compression"), opts.Compression)}
	}
	switch opts.Isolation {
	case "read_uncommitted":
	case "read_committed":
		bo.Isolation = client.ReadCommitted
	default:
		return usageError{fmt.Errorf("%s %q: read_uncommitted or read_committed", gopts.Sources.of("isolation"), opts.Isolation)}
	}
	if bo.Topics, err = compileAll(gopts, "topics", opts.Topics); err != nil {
		return err
	}
	if bo.Exclude, err = compileAll(gopts, "exclude", opts.Exclude); err != nil {
		return err
	}
	recipients := opts.EncryptTo
	if opts.EncryptToFile != "" {
		more, err := readRecipients(opts.EncryptToFile)
		if err != nil {
			return err
		}
		recipients = append(recipients, more...)
	}
	keys, err := ropts.keys(recipients)
	if err != nil {
		return err
	}
	if len(recipients) > 0 && ropts.IdentityFile == "" {
		return usageError{fmt.Errorf("%s: an encrypted repository needs --identity-file too, the writer's own key, to read its manifests (ktape keygen makes one)", gopts.Sources.of("encrypt-to"))}
	}
	st, err := storage.Open(ctx, ropts.URL)
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := repo.OpenKeys(ctx, st, true, keys)
	if err != nil {
		return err
	}
	c, err := client.New(ctx, seeds, dialer)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", strings.Join(seeds, ","), err)
	}
	defer c.Close()
	// The first SIGINT or SIGTERM stops the run gracefully; a second
	// abandons it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	bo.Stop = stop
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
			close(stop)
		case <-ctx.Done():
			return
		}
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	// Progress: bars on a terminal, log lines otherwise; logs go above
	// the bars while they are drawn.
	var metrics *backupMetrics
	if opts.MetricsAddr != "" {
		metrics = newBackupMetrics()
	}
	logOut := errOut
	mon := newBackupMonitor(nil, metrics)
	if isTerminal(errOut) && !gopts.JSON && opts.Mode == backup.Snapshot {
		bars := mon.showBars(errOut)
		defer bars()
		logOut = mon.bars
	}
	bo.Log = newLogger(logOut, gopts.JSON)
	mon.log = bo.Log
	bo.Observer = mon
	if mon.bars == nil && opts.ProgressInterval > 0 {
		defer mon.startProgressLog(ctx, opts.ProgressInterval, mon.lagAttrs)()
	}
	if metrics != nil {
		addr, err := metrics.serve(ctx, opts.MetricsAddr, bo.Log)
		if err != nil {
			return usageError{err}
		}
		bo.Log.Info("serving metrics", "url", "http://"+addr+"/metrics")
	}
	start := time.Now()
	m, stats, err := backup.Run(ctx, c, r, bo)
	if errors.Is(err, backup.ErrStopped) {
		return interrupted{err}
	}
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	if gopts.JSON {
		return json.NewEncoder(out).Encode(struct {
			MessageType string  `json:"message_type"`
			Backup      string  `json:"backup"`
			Parent      string  `json:"parent,omitempty"`
			Resumed     bool    `json:"resumed"`
			Topics      int     `json:"topics"`
			Partitions  int     `json:"partitions"`
			Batches     int64   `json:"batches"`
			Records     int64   `json:"records"`
			Bytes       int64   `json:"bytes"`
			Segments    int     `json:"segments"`
			StoredBytes int64   `json:"stored_bytes"`
			Gaps        int     `json:"gaps"`
			Groups      int     `json:"groups"`
			PeakHeld    int64   `json:"peak_segment_bytes"`
			Seconds     float64 `json:"seconds"`
			Throttled   float64 `json:"throttled_seconds"`
			Workers     string  `json:"workers_group,omitempty"`
		}{"backup_done", m.ID, m.Parent, stats.Resumed, len(m.Topics), stats.Partitions, stats.Batches, stats.Records, stats.Bytes,
			stats.Segments, stats.StoredBytes, stats.Gaps, stats.Groups, stats.PeakHeld, secs, stats.Throttled.Seconds(), opts.Workers.Group})
	}
	how := "backup"
	switch {
	case stats.Resumed:
		how = "resumed backup"
	case m.Parent != "":
		how = "incremental backup (after " + m.Parent + ")"
	}
	if opts.Workers.Group != "" {
		how += " shared by workers group " + opts.Workers.Group + ", of which this worker's part"
	}
	fmt.Fprintf(out, "%s %s: %d topics, %d partitions; this run: %d records in %d batches, %s, stored as %s in %d segments, %.1fs",
		how, m.ID, len(m.Topics), stats.Partitions, stats.Records, stats.Batches, size(uint64(stats.Bytes)), size(uint64(stats.StoredBytes)), stats.Segments, secs)
	if stats.Throttled > 0 {
		fmt.Fprintf(out, "; paused %.1fs in all because brokers over their quota throttled the fetches", stats.Throttled.Seconds())
	}
	fmt.Fprintln(out)
	return nil
}

// newLogger logs to w: JSON lines under --json, text otherwise.
func newLogger(w io.Writer, asJSON bool) *slog.Logger {
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// softMemoryLimit asks the garbage collector to keep the heap near the
// memory budget (plus room for the runtime, encoders and metadata): by
// default Go lets the heap grow to twice what is live, and a budget is
// a promise about the process, not only about ktape's buffers. GOMEMLIMIT,
// when set, wins.
func softMemoryLimit(budget int64) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(budget + 128<<20)
	}
}

// compileAll compiles the regular expressions given to a repeatable flag;
// a bad one is a usage error naming where it came from.
func compileAll(gopts GlobalOptions, flag string, exprs []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, s := range exprs {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, usageError{fmt.Errorf("%s %q: %w", gopts.Sources.of(flag), s, err)}
		}
		out = append(out, re)
	}
	return out, nil
}
