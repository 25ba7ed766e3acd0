// Command workers measures a snapshot backup shared by several ktape
// processes (ktape backup --workers-group): how throughput and CPU scale
// with the number of workers on one machine, and what the coordination
// through Kafka's classic group protocol costs: the first assignment, a
// rebalance when a worker joins part-way, and one when a worker is killed
// (which the group only notices after the session timeout).
//
// # Usage
//
//	go run ./bench/workers [flags]          (or: make bench-workers ARGS='...')
//
//	-workers      worker counts of the scaling runs, comma-separated (default 1,2,3)
//	-scenarios    which runs, comma-separated (default scale,join,kill):
//	              scale: N workers started together;
//	              join: -join-workers minus one started together, one more
//	              started part-way;
//	              kill: -kill-workers started together, one SIGKILLed
//	              part-way
//	-join-workers workers of a join run, the last one joining (default 3)
//	-kill-workers workers of a kill run, one of them killed (default 3)
//	-event-at     when the join or kill happens, after the first worker
//	              started (default 0: 40% of the wall time of this round's
//	              scale run with as many workers as were running; then
//	              the scale run with that count must be in -workers)
//	-size         batch bytes of the topic (default 2GiB)
//	-partitions   partitions (default 64)
//	-codec        batch compression (default lz4)
//	-batch-bytes  records per batch, uncompressed (default 64KiB)
//	-pool-bytes   distinct batches the source generates (default 64MiB)
//	-memory       every worker's --memory (default 256MiB)
//	-session-timeout, -rebalance-timeout
//	              the workers' --worker-session-timeout and
//	              --worker-rebalance-timeout (default ktape's: 30s, 1m);
//	              the heartbeat interval follows as session/10, at most 3s
//	-checkpoint-interval
//	              the workers' --checkpoint-interval ("" for ktape's default)
//	-reps         rounds (default 5)
//	-ktape-bin    a built ktape (default: go build ./cmd/ktape)
//	-dir          where repositories are written, then deleted (default: a temp dir)
//	-settle       pause between the broker being ready and the first
//	              worker starting (default 3s; see bench/backup)
//	-fetch-delay, -partition-max-bytes
//	              slow the broker down (bench/source's flags; for the
//	              test's tiny topic, which must last long enough for a
//	              worker to join or die part-way)
//	-note         text added to every line
//	-timeout      limit for one run (default 10m)
//	-table        read result lines on stdin and print a markdown table of
//	              medians, with min–max, per scenario and worker count
//	-summary      with -table: print a JSON summary object instead
//
// Each run prints one JSON line on stdout; progress goes to stderr. The exit
// status is 1 if any run failed, 2 for bad flags.
//
// # The broker
//
// Every run starts a fresh broker process: bench/source (the topic in
// memory, served with vectored writes, so that the workers are what is
// measured) forwarding the group APIs, JoinGroup, SyncGroup, Heartbeat
// and LeaveGroup, to a franz-go kfake cluster in the same process, whose
// group coordinator is the one ktape's group tests run against (see
// bench/source's package doc). Serving the data from kfake instead would
// bound the throughput by kfake: bench/backup measures ktape at about
// 1.5× the speed on bench/source. The forwarding adds one loopback round
// trip to each group request, microseconds against rebalances of seconds.
//
// # How a run is measured
//
// Each worker is a separate `ktape backup --workers-group G --json` process
// with its own --worker-name, run under bench/internal/launch, so its CPU
// time (user and system, every thread) and peak RSS are its own. All of a
// run's workers write one fresh local repository. Times are from the
// moment the first worker was started: wall time until the last one exits;
// each worker's assignments from its JSON log lines ("backup: assigned
// partitions by the workers group", with generation, members and
// partitions; slog stamps each line with the time). Afterwards the
// repository must hold exactly one backup, whose manifest covers every
// partition from 0 to its high watermark without gaps and whose segments
// hold every batch and byte of the topic; every worker that exited must
// have printed that backup's id.
//
// # Output fields
//
// scenario, workers (processes started in all), partitions, codec,
// size_bytes, rep: the configuration. topic_bytes, topic_batches,
// topic_records: what the broker holds. seconds: first start to last exit.
// mb_per_sec: topic_bytes/10^6 per second of that. cpu_s: every worker's
// CPU seconds added up; cpu_s_per_gib: per GiB of the topic. first_assign_s:
// when the first worker got partitions; stable_s: when every worker started
// together held partitions in a generation with all of them. generations:
// distinct generations seen. event_at_s: when the join or kill happened;
// rebalance_s: from then until every worker still running held partitions
// in the new generation (for a kill, this is the session timeout plus the
// rebalance). stable_s and rebalance_s are -1 when that never happened (a
// worker killed before its first assignment; the run finishing before the
// joining worker was assigned anything: it is then handed the finished
// run). server_cpu_s: the broker process's CPU seconds while the workers
// ran. server_bytes: batch bytes the broker served (more than
// topic_bytes when work was redone after a kill). per_worker: name,
// started_s, exit_s, cpu_user_s, cpu_sys_s, max_rss_mb, bytes and
// partitions (its backup_done line; absent for the killed one), killed,
// assignments (t_s, generation, members, partitions).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ktape/ktape/bench/internal/harness"
	"github.com/ktape/ktape/bench/source"
)

// childEnv, when set, makes a test binary act as this command (see
// workers_test.go's TestMain), so that the harness can re-run it as its
// broker.
const childEnv = "KTAPE_BENCH_WORKERS_CHILD"

func main() {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "workers: cannot find own executable:", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], self, nil, os.Stdout, os.Stderr))
}

var knownScenarios = []string{"scale", "join", "kill"}

// options are the parsed flags.
type options struct {
	workers            []int
	scenarios          []string
	joinWorkers        int
	killWorkers        int
	eventAt            time.Duration
	size               int64
	partitions         int
	codec              string
	batchBytes         int64
	poolBytes          int64
	memory             int64
	sessionTimeout     time.Duration
	rebalanceTimeout   time.Duration
	checkpointInterval string
	reps               int
	ktapeBin           string
	dir                string
	settle             time.Duration
	fetchDelay         time.Duration
	partitionMaxBytes  int
	note               string
	timeout            time.Duration
	table              bool
	summary            bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("workers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	workers := fs.String("workers", "1,2,3", "worker counts of the scaling runs, comma-separated")
	scenarios := fs.String("scenarios", "scale,join,kill", "runs: scale, join, kill, comma-separated")
	fs.IntVar(&o.joinWorkers, "join-workers", 3, "workers of a join run, the last one joining part-way")
	fs.IntVar(&o.killWorkers, "kill-workers", 3, "workers of a kill run, one killed part-way")
	fs.DurationVar(&o.eventAt, "event-at", 0, "when the join or kill happens (0: 40% of this round's scale run with as many workers)")
	size := fs.String("size", "2GiB", "batch bytes of the topic (KiB, MiB, GiB)")
	fs.IntVar(&o.partitions, "partitions", 64, "partitions")
	fs.StringVar(&o.codec, "codec", "lz4", "batch compression: none, gzip, snappy, lz4, zstd")
	batch := fs.String("batch-bytes", "64KiB", "records per batch, uncompressed bytes")
	pool := fs.String("pool-bytes", "64MiB", "distinct batches the source generates, uncompressed bytes")
	memory := fs.String("memory", "256MiB", "every worker's --memory")
	fs.DurationVar(&o.sessionTimeout, "session-timeout", 30*time.Second, "the workers' --worker-session-timeout")
	fs.DurationVar(&o.rebalanceTimeout, "rebalance-timeout", time.Minute, "the workers' --worker-rebalance-timeout")
	fs.StringVar(&o.checkpointInterval, "checkpoint-interval", "", "the workers' --checkpoint-interval (default ktape's)")
	fs.IntVar(&o.reps, "reps", 5, "rounds")
	fs.StringVar(&o.ktapeBin, "ktape-bin", "", "a built ktape binary (default: go build ./cmd/ktape)")
	fs.StringVar(&o.dir, "dir", "", "directory for repositories, deleted after each run (default: a new temp dir)")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "pause between the broker being ready and the first worker starting")
	fs.DurationVar(&o.fetchDelay, "fetch-delay", 0, "the broker holds every Fetch this long (for tests)")
	fs.IntVar(&o.partitionMaxBytes, "partition-max-bytes", 0, "the broker returns at most this many bytes per partition per Fetch (for tests)")
	fs.StringVar(&o.note, "note", "", "text added to every result line")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit for one run")
	fs.BoolVar(&o.table, "table", false, "read result lines on stdin and print a markdown table of medians")
	fs.BoolVar(&o.summary, "summary", false, "with -table: a JSON summary instead of markdown")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.workers, err = harness.ParsePartitions("workers", *workers); err != nil {
		return nil, err
	}
	if slices.Max(o.workers) > 64 {
		return nil, fmt.Errorf("-workers %q: at most 64 workers", *workers)
	}
	if o.scenarios, err = harness.ParseNames("scenarios", *scenarios, knownScenarios); err != nil {
		return nil, err
	}
	if _, err := source.ParseCodec(o.codec); err != nil {
		return nil, fmt.Errorf("-codec: %w", err)
	}
	if o.size, err = source.ParseSize("-size", *size); err != nil {
		return nil, err
	}
	if o.batchBytes, err = source.ParseSize("-batch-bytes", *batch); err != nil {
		return nil, err
	}
	if o.poolBytes, err = source.ParseSize("-pool-bytes", *pool); err != nil {
		return nil, err
	}
	if o.memory, err = source.ParseSize("-memory", *memory); err != nil {
		return nil, err
	}
	switch {
	case o.partitions < 1 || o.partitions > 10_000:
		return nil, fmt.Errorf("-partitions %d: want 1 to 10000", o.partitions)
	case o.joinWorkers < 2 || o.joinWorkers > 64:
		return nil, fmt.Errorf("-join-workers %d: want 2 to 64 (one joins the others)", o.joinWorkers)
	case o.killWorkers < 2 || o.killWorkers > 64:
		return nil, fmt.Errorf("-kill-workers %d: want 2 to 64 (one is killed, the others finish)", o.killWorkers)
	case o.eventAt < 0:
		return nil, fmt.Errorf("-event-at %v: want a duration of 0 or more", o.eventAt)
	case o.sessionTimeout <= 0 || o.rebalanceTimeout <= 0:
		return nil, fmt.Errorf("-session-timeout %v, -rebalance-timeout %v: want positive durations", o.sessionTimeout, o.rebalanceTimeout)
	case o.reps < 1:
		return nil, fmt.Errorf("-reps %d: want at least 1", o.reps)
	case o.settle < 0 || o.fetchDelay < 0 || o.partitionMaxBytes < 0:
		return nil, fmt.Errorf("-settle, -fetch-delay and -partition-max-bytes cannot be negative")
	case o.timeout <= 0:
		return nil, fmt.Errorf("-timeout %v: want a positive duration", o.timeout)
	}
	if o.eventAt == 0 {
		need := map[string]int{"join": o.joinWorkers - 1, "kill": o.killWorkers}
		for _, s := range o.scenarios {
			if n, ok := need[s]; ok && (!slices.Contains(o.scenarios, "scale") || !slices.Contains(o.workers, n)) {
				return nil, fmt.Errorf("-scenarios %s without -event-at needs the scale run of %d workers (-scenarios scale and %d in -workers) to time it", s, n, n)
			}
		}
	}
	return o, nil
}

// run is the whole command: the harness; with a first argument
// serve-source the broker process.
func run(args []string, self string, selfEnv []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "serve-source" {
		return serveSource(args[1:], stdout, stderr)
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "workers:", err)
		return 2
	}
	if o.table {
		if err := writeTable(os.Stdin, stdout, o.summary); err != nil {
			fmt.Fprintln(stderr, "workers -table:", err)
			return 1
		}
		return 0
	}
	h := &runner{opts: o, self: self, selfEnv: selfEnv, stdout: stdout, stderr: &harness.SyncWriter{W: stderr}}
	if err := h.run(); err != nil {
		fmt.Fprintln(stderr, "workers:", err)
		return 1
	}
	return 0
}

// serveSource is the broker process: a kfake cluster for the group APIs
// and bench/source, forwarding them to it, for the data. Its flags and
// output are bench/source's.
func serveSource(args []string, stdout, stderr io.Writer) int {
	// Kafka's (and kfake's) smallest session timeout is 6 s; the test's
	// tiny runs use less, and the group coordinator is all kfake does here.
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.BrokerConfigs(map[string]string{"group.min.session.timeout.ms": "500"}))
	if err != nil {
		fmt.Fprintln(stderr, "serve-source: start kfake for the group coordinator:", err)
		return 1
	}
	defer c.Close()
	return source.Run(append(args, "-groups", c.ListenAddrs()[0]), stdout, stderr)
}
