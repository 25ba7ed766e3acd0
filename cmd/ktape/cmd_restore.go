package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
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
	PartitionMap      []string
	NoCreateTopics    bool
	ReplicationFactor int
	AllowNonEmpty     bool
	Memory            int64
	From, To          string
	ToOffset          []string
	Groups            bool
	Group             []string
	ExcludeGroup      []string
	GroupRemap        []string
	DryRun            bool
	RateLimit         int64
	MetricsAddr       string
	ProgressInterval  time.Duration
	Workers           WorkersOptions
}

// AddFlags registers the restore command's flags on fs.
func (o *RestoreOptions) AddFlags(fs *pflag.FlagSet) {
	o.Conn.AddFlags(fs)
	fs.StringVar(&o.Backup, "backup", "latest", "the backup to restore: its id, or latest")
	fs.StringArrayVar(&o.Topics, "topics", nil, "restore the backed-up topics whose whole name matches this regular expression (repeatable; default all)")
	fs.StringArrayVar(&o.Exclude, "exclude", nil, "leave out topics whose whole name matches this regular expression (repeatable)")
	fs.StringArrayVar(&o.Remap, "remap", nil, "restore topics matching SRC (a regular expression, whole name) as DST, which may use SRC's groups ($1): SRC=DST (repeatable; the first match applies)")
	fs.StringArrayVar(&o.PartitionMap, "partition-map", nil, "restore topics matching TOPIC_REGEX (whole name) into other partitions: TOPIC_REGEX=SRC:DST[,SRC:DST...] maps source partitions to target partitions (several may go to one), TOPIC_REGEX=hash:N spreads records over N partitions by key like Kafka's default partitioner (repeatable; the first match applies)")
	fs.BoolVar(&o.NoCreateTopics, "no-create-topics", false, "fail instead of creating missing target topics")
	fs.IntVar(&o.ReplicationFactor, "replication-factor", 0, "replication factor of created topics (default: the source's)")
	fs.BoolVar(&o.AllowNonEmpty, "allow-nonempty", false, "restore into partitions that already hold records (they would hold both)")
	fs.Var(newSizeValue(&o.Memory, 256<<20), "memory", "memory budget for segments read and batches not yet acknowledged: bytes, or with a unit (512MiB); at least 8MiB")
	fs.StringVar(&o.From, "from", "", "restore only records with a timestamp at or after this time: RFC 3339 or Unix milliseconds")
	fs.StringVar(&o.To, "to", "", "restore only records with a timestamp at or before this time: RFC 3339 or Unix milliseconds")
	fs.StringArrayVar(&o.ToOffset, "to-offset", nil, "restore a source partition only up to and including an offset: TOPIC:PARTITION:OFFSET (repeatable)")
	fs.BoolVar(&o.Groups, "groups", false, "commit the backup's consumer group offsets, translated to the restored offsets, to groups with no active members on the target")
	fs.StringArrayVar(&o.Group, "group", nil, "with --groups, only groups whose whole name matches this regular expression (repeatable; default all)")
	fs.StringArrayVar(&o.ExcludeGroup, "exclude-group", nil, "with --groups, leave out groups whose whole name matches this regular expression (repeatable)")
	fs.StringArrayVar(&o.GroupRemap, "group-remap", nil, "with --groups, commit groups matching SRC as DST: SRC=DST like --remap (repeatable)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "show what would be restored where, and which topics would be created; write nothing")
	fs.Var(newSizeValue(&o.RateLimit, 0), "rate-limit", "produce at most this many batch bytes per second: bytes, or with a unit (50MiB); 0 for no limit")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics (ktape_restore_*) at http://HOST:PORT/metrics while the restore runs")
	fs.DurationVar(&o.ProgressInterval, "progress-interval", 30*time.Second, "how often progress is logged when standard error is not a terminal (0: never)")
	o.Workers.AddFlags(fs, "restore", false)
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

--partition-map restores a topic into other partitions. With SRC:DST pairs
(orders=0:0,1:0,2:1) the stored batches go as they are into the target
partition named; sources mapped to one partition are written one after the
other, in partition order, and every backed-up partition must be named.
With hash:N (orders=hash:12) each record goes to the partition Kafka's
default partitioner gives its key, murmur2(key) % N, and a record with a
null key to its source partition % N; the batches are re-encoded. A missing
target topic is created with N, or the highest DST plus one, partitions.
Consumer group offsets on merged or key-spread partitions have no exact
translation: they are not committed, and reported.

--from and --to (both inclusive) and --to-offset restore a point in time:
batches wholly outside are skipped unread, batches straddling a bound are
re-encoded with just the records inside. --groups commits each backed-up
consumer group offset translated to the target: the offset of the first
restored record at or after it. Groups with active members on the target
are left alone and reported (exit 1); run the restore again once they
are stopped.

A restore keeps a log in the repository (restores/<id>/: where each target
partition started, then an offset map per partition). Run the same command
again after an interruption (even kill -9) and it continues where the
target partitions end: nothing twice, nothing lost. Run it after it
finished and it only commits group offsets again.

Progress shows as bars on a terminal, otherwise as a log line every
--progress-interval; --metrics-addr serves Prometheus metrics.

With --workers-group, several processes share the restore: each restores
the target partitions Kafka's group protocol assigns it, with the same
exactly-once resume per partition; partitions of a worker that stops or
dies move to the others, which continue where the target holds them. The
worker that finds every partition restored records the restore as done and
commits the group offsets; every worker exits 0 then. Start every worker
with the same backup and options.

With --json, one "restore_done" object with the totals (or, with --dry-run,
one "restore_plan" object).

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
	if err := opts.Workers.check(gopts); err != nil {
		return err
	}
	if opts.ProgressInterval < 0 {
		return usageError{fmt.Errorf("%s %s: 0 or more", gopts.Sources.of("progress-interval"), opts.ProgressInterval)}
	}
	ro := restore.Options{NoCreateTopics: opts.NoCreateTopics, ReplicationFactor: int16(opts.ReplicationFactor),
		AllowNonEmpty: opts.AllowNonEmpty, Memory: opts.Memory, Log: newLogger(errOut, gopts.JSON)}
	if ro.Topics, err = compileAll(gopts, "topics", opts.Topics); err != nil {
		return err
	}
	if ro.Exclude, err = compileAll(gopts, "exclude", opts.Exclude); err != nil {
		return err
	}
	if ro.Remap, err = remaps(gopts, "remap", opts.Remap); err != nil {
		return err
	}
	if ro.PartitionMap, err = partitionMaps(gopts, "partition-map", opts.PartitionMap); err != nil {
		return err
	}
	if err := opts.window(gopts, &ro); err != nil {
		return err
	}
	ro.Groups, ro.RateLimit = opts.Groups, opts.RateLimit
	if ro.GroupNames, err = compileAll(gopts, "group", opts.Group); err != nil {
		return err
	}
	if ro.GroupExclude, err = compileAll(gopts, "exclude-group", opts.ExcludeGroup); err != nil {
		return err
	}
	if ro.GroupRemap, err = remaps(gopts, "group-remap", opts.GroupRemap); err != nil {
		return err
	}
	softMemoryLimit(opts.Memory)
	dialer, err := opts.Conn.Dialer(gopts.Sources)
	if err != nil {
		return err
	}
	dialer.MaxResponseSize = responseLimit(opts.Memory)
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
	if opts.DryRun {
		pv, err := restore.PreviewRestore(ctx, c, m, ro)
		if err != nil {
			return err
		}
		return printPreview(out, pv, gopts.JSON)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Progress: bars on a terminal, log lines otherwise; logs go above
	// the bars while they are drawn.
	var metrics *restoreMetrics
	if opts.MetricsAddr != "" {
		metrics = newRestoreMetrics()
	}
	mon := newRestoreMonitor(ro.Log, metrics)
	if isTerminal(errOut) && !gopts.JSON {
		defer mon.showBars(errOut)()
		ro.Log = newLogger(mon.bars, gopts.JSON)
		mon.log = ro.Log
	} else if opts.ProgressInterval > 0 {
		defer mon.startProgressLog(ctx, opts.ProgressInterval, nil)()
	}
	ro.Observer = mon
	if metrics != nil {
		addr, err := metrics.serve(ctx, opts.MetricsAddr, ro.Log)
		if err != nil {
			return usageError{err}
		}
		ro.Log.Info("serving metrics", "url", "http://"+addr+"/metrics")
	}
	start := time.Now()
	var stats restore.Stats
	if opts.Workers.Group != "" {
		stats, err = restore.RunWorkers(ctx, c, r, m, ro, opts.Workers.restoreWorkers())
	} else {
		stats, err = restore.Run(ctx, c, r, m, ro)
	}
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	if gopts.JSON {
		return json.NewEncoder(out).Encode(struct {
			MessageType     string   `json:"message_type"`
			Backup          string   `json:"backup"`
			Restore         string   `json:"restore"`
			Resumed         bool     `json:"resumed"`
			AlreadyComplete bool     `json:"already_complete"`
			Partitions      int      `json:"partitions"`
			TopicsCreated   int      `json:"topics_created"`
			Batches         int64    `json:"batches"`
			Records         int64    `json:"records"`
			Bytes           int64    `json:"bytes"`
			AlreadyRestored int64    `json:"batches_already_restored"`
			Markers         int64    `json:"markers_skipped"`
			Aborted         int64    `json:"aborted_batches_skipped"`
			Undecided       int64    `json:"undecided_batches_skipped"`
			Outside         int64    `json:"batches_outside_window"`
			Filtered        int64    `json:"batches_cut_by_window"`
			Renumbered      int64    `json:"renumbered_batches"`
			Repartitioned   int64    `json:"repartitioned_batches"`
			Converted       int64    `json:"legacy_messages_converted"`
			Groups          []string `json:"groups_committed"`
			NotTranslated   []string `json:"groups_not_translated"`
			Seconds         float64  `json:"seconds"`
			Throttled       float64  `json:"throttled_seconds"`
			Workers         string   `json:"workers_group,omitempty"`
		}{"restore_done", m.ID, stats.ID, stats.Resumed, stats.Complete, stats.Partitions, stats.TopicsCreated, stats.Batches, stats.Records, stats.Bytes,
			stats.AlreadyRestored, stats.Markers, stats.Aborted, stats.Undecided, stats.Outside, stats.Filtered, stats.Renumbered, stats.Repartitioned,
			stats.Converted, stats.GroupsCommitted, stats.GroupsNotTranslated, secs, stats.Throttled.Seconds(), opts.Workers.Group})
	}
	if stats.Complete {
		fmt.Fprintf(out, "restore %s of backup %s had already finished; nothing produced", stats.ID, m.ID)
	} else {
		verb := "restored"
		if stats.Resumed {
			verb = fmt.Sprintf("resumed restore %s (%d batches were already in the target) and restored", stats.ID, stats.AlreadyRestored)
		}
		fmt.Fprintf(out, "%s backup %s: %d partitions, %d records in %d batches, %s, %.1fs; left out %d transaction markers, %d aborted and %d undecided transactional batches",
			verb, m.ID, stats.Partitions, stats.Records, stats.Batches, size(uint64(stats.Bytes)), secs, stats.Markers, stats.Aborted, stats.Undecided)
		if stats.Outside+stats.Filtered > 0 {
			fmt.Fprintf(out, ", %d batches outside the window, %d cut by it", stats.Outside, stats.Filtered)
		}
		if stats.Repartitioned > 0 {
			fmt.Fprintf(out, "; spread the records of %d batches by key", stats.Repartitioned)
		}
		if stats.Converted > 0 {
			fmt.Fprintf(out, "; converted %d legacy (v0/v1) messages to v2 batches", stats.Converted)
		}
		if stats.Throttled > 0 {
			fmt.Fprintf(out, "; paused %.1fs in all because brokers over their quota throttled the producer", stats.Throttled.Seconds())
		}
	}
	if len(stats.GroupsCommitted) > 0 {
		fmt.Fprintf(out, "; committed the offsets of %d groups (%s)", len(stats.GroupsCommitted), strings.Join(stats.GroupsCommitted, ", "))
	}
	if len(stats.GroupsNotTranslated) > 0 {
		fmt.Fprintf(out, "; did not commit group offsets on merged or key-spread partitions, which have no exact translation (%s)", strings.Join(stats.GroupsNotTranslated, "; "))
	}
	fmt.Fprintln(out)
	return nil
}

// window reads --from, --to and --to-offset into ro.
func (o *RestoreOptions) window(gopts GlobalOptions, ro *restore.Options) error {
	var err error
	if o.From != "" {
		if ro.From, err = restore.ParseTime(o.From); err != nil {
			return usageError{fmt.Errorf("%s: %w", gopts.Sources.of("from"), err)}
		}
	}
	if o.To != "" {
		if ro.To, err = restore.ParseTime(o.To); err != nil {
			return usageError{fmt.Errorf("%s: %w", gopts.Sources.of("to"), err)}
		}
	}
	for _, s := range o.ToOffset {
		i := strings.LastIndex(s, ":")
		j := strings.LastIndex(s[:max(i, 0)], ":")
		if i < 0 || j <= 0 {
			return usageError{fmt.Errorf("%s %q: want TOPIC:PARTITION:OFFSET", gopts.Sources.of("to-offset"), s)}
		}
		p, perr := strconv.ParseInt(s[j+1:i], 10, 32)
		off, oerr := strconv.ParseInt(s[i+1:], 10, 64)
		if perr != nil || oerr != nil || p < 0 || off < 0 {
			return usageError{fmt.Errorf("%s %q: want TOPIC:PARTITION:OFFSET with a partition and an offset of 0 or more", gopts.Sources.of("to-offset"), s)}
		}
		if ro.ToOffset == nil {
			ro.ToOffset = map[client.TopicPartition]int64{}
		}
		ro.ToOffset[client.TopicPartition{Topic: s[:j], Partition: int32(p)}] = off
	}
	return nil
}

// remaps reads SRC=DST rules of flag name.
func remaps(gopts GlobalOptions, name string, rules []string) ([]restore.Remap, error) {
	var out []restore.Remap
	for _, s := range rules {
		src, dst, ok := strings.Cut(s, "=")
		if !ok || src == "" || dst == "" {
			return nil, usageError{fmt.Errorf("%s %q: want SRC=DST", gopts.Sources.of(name), s)}
		}
		re, err := regexp.Compile(src)
		if err != nil {
			return nil, usageError{fmt.Errorf("%s %q: %w", gopts.Sources.of(name), s, err)}
		}
		out = append(out, restore.Remap{From: re, To: dst})
	}
	return out, nil
}

// partitionMaps reads the TOPIC_REGEX=... partition maps of flag name.
func partitionMaps(gopts GlobalOptions, name string, specs []string) ([]restore.PartitionMap, error) {
	var out []restore.PartitionMap
	for _, s := range specs {
		pm, err := restore.ParsePartitionMap(s)
		if err != nil {
			return nil, usageError{fmt.Errorf("%s %q: %w", gopts.Sources.of(name), s, err)}
		}
		out = append(out, pm)
	}
	return out, nil
}

// printPreview prints a dry run's plan.
func printPreview(out io.Writer, pv *restore.Preview, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(out).Encode(struct {
			MessageType string `json:"message_type"`
			*restore.Preview
		}{"restore_plan", pv})
	}
	fmt.Fprintf(out, "dry run: restoring backup %s would write\n", pv.Backup)
	for _, t := range pv.Topics {
		action := "into the existing topic"
		if t.Create {
			action = fmt.Sprintf("creating it with %d partitions", t.Partitions)
		}
		fmt.Fprintf(out, "  %s -> %s (%s)\n", t.Source, t.Target, action)
		if t.ByKey > 0 {
			fmt.Fprintf(out, "    partition map %s: records spread by key over partitions 0..%d (murmur2(key) %% %d; null keys to source partition %% %d), re-encoded\n",
				t.PartitionMap, t.ByKey-1, t.ByKey, t.ByKey)
		} else if t.PartitionMap != "" {
			fmt.Fprintf(out, "    partition map %s: stored batches sent as they are\n", t.PartitionMap)
		}
		for _, p := range t.Restored {
			times := "no data"
			if p.FirstTime >= 0 {
				times = time.UnixMilli(p.FirstTime).UTC().Format(time.RFC3339) + " .. " + time.UnixMilli(p.MaxTime).UTC().Format(time.RFC3339)
			}
			where := ""
			switch {
			case p.Target < 0:
				where = " -> by key"
			case p.Target != p.Partition || t.PartitionMap != "":
				where = fmt.Sprintf(" -> %d", p.Target)
			}
			fmt.Fprintf(out, "    partition %d%s: offsets %d..%d, %s, up to %s\n", p.Partition, where, p.FirstOffset, p.LastOffset, times, size(p.Bytes))
		}
	}
	if len(pv.Groups) > 0 {
		fmt.Fprintf(out, "  consumer groups with offsets to translate: %s\n", strings.Join(pv.Groups, ", "))
	}
	if len(pv.GroupsNotTranslated) > 0 {
		fmt.Fprintf(out, "  consumer group offsets on merged or key-spread partitions, which have no exact translation and would not be committed: %s\n", strings.Join(pv.GroupsNotTranslated, "; "))
	}
	return nil
}
