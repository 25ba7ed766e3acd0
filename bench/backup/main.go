// Command backup measures how fast Kafka clients copy a whole topic from a
// broker to local storage: ktape backup, against kcat and a franz-go
// consumer writing the records to a file, and a raw fetch loop that throws
// the bytes away, the ceiling. The broker is bench/source, which serves
// batches from memory with vectored writes so that the client is what is
// measured, or franz-go's kfake for comparison.
//
// # Usage
//
//	go run ./bench/backup [flags]          (or: make bench-backup ARGS='...')
//
//	-impl         clients, comma-separated (default ktape,ktape-auto,kcat,kgo,raw;
//	              also ktape-age)
//	-target       brokers, comma-separated: source, kfake (default source)
//	-size         batch bytes of the topic, comma-separated (default 1GiB)
//	-partitions   partitions, comma-separated (default 1,8)
//	-codec        batch compression, comma-separated (default none,lz4)
//	-batch-bytes  records per batch, uncompressed (default 64KiB)
//	-pool-bytes   distinct batches the source generates (default 64MiB)
//	-reps         rounds of the whole matrix (default 3)
//	-first-rep    number of the first round (default 1): rounds run as
//	              separate invocations (one at a time under a lock, on a
//	              machine shared with other benchmarks) keep distinct
//	              numbers and impl orders
//	-memory       ktape backup --memory, and the raw loop's budget (default 256MiB)
//	-ktape-bin    a built ktape (default: go build ./cmd/ktape)
//	-kcat-bin     kcat (default: kcat on PATH)
//	-dir          where outputs are written, then deleted (default: a temp dir)
//	-settle       pause between the broker being ready and the client
//	              starting (default 3s; see "The machine" below)
//	-note         text added to every line's note (e.g. which ktape build)
//	-timeout      limit for one run (default 10m)
//	-table        read result lines on stdin and print markdown tables of
//	              their medians, with ratios to ktape
//	-summary      with -table: one row per configuration
//
// Each run prints one JSON line on stdout; progress goes to stderr. The exit
// status is 1 if any run failed, 2 for bad flags.
//
// # How a run is measured
//
// Every run starts a fresh broker process (this program re-run as
// "serve-source" or "serve-kfake"), which generates the topic (package
// bench/source: 1 KiB log-line-like values, 8-byte keys, every batch the
// same number of records) and, for kfake, produces it there batch by
// batch before saying it is ready. Then the client runs as a fresh
// process under bench/internal/launch, so its CPU time and peak RSS
// (getrusage of the child: user and system time of every thread, max RSS)
// are its own, and the wall time is the child's life, start-up included.
// (Before the launcher, the client was this program's own child, and on
// Linux its peak RSS could not be reported below this program's, about
// 50 MB.) Rounds run the whole matrix in
// turn, each round in its own shuffled order of impls, so every impl sees
// the machine in the same states; -table reports medians.
//
//   - ktape: the ktape binary, "ktape backup --brokers ADDR --repo DIR
//     --json --compression none --memory M" (ktape-auto: --compression
//     auto, which frames uncompressed batches in zstd). Checked afterwards
//     by reading the backup's manifest (package repo): every partition's
//     range must be [0, high watermark) and its segments must hold every
//     batch and byte of the topic.
//   - ktape-age: the ktape command, into a fresh repository it creates
//     encrypted at rest (README.md, "Encryption at rest"): "--encrypt-to
//     RECIPIENT --identity-file KEY" added. One age key, made with "ktape
//     keygen" once per invocation, outside any run, is both the
//     recipient and the backup's own identity (a separate writer key would
//     only seal each metadata object to one more recipient). Checked as
//     ktape's is, the manifest read with the key (repo.OpenKeys); the
//     repository must be encrypted (a plain one fails the check, as an
//     encrypted one fails ktape's). Not in the default -impl: a sixth
//     client would lengthen make bench-backup by a fifth, for a cost
//     measured on its own (results/2026-11-22-age.*).
//   - kcat: "kcat -C -b ADDR -t TOPIC -e -o beginning -q -f %k%s" (Debian's
//     kcat, librdkafka's defaults) with stdout on a file. It saw every
//     record if the file holds exactly records × (key + value) bytes.
//   - kgo: a franz-go consumer (defaults; partitions assigned directly, no
//     group) writing each record's key and value to a file through a 64
//     KiB bufio.Writer, until every partition reaches its high watermark.
//   - raw: ktape's client.Fetcher configured as ktape backup configures it
//     (budget memory/2), walking each response's batch headers and
//     discarding the bytes: the ceiling of a backup over this fetcher.
//
// # The machine
//
// On the project's benchmark VM (Firecracker, free page reporting on)
// memory the guest has freed is handed back to the host after about two
// seconds, and touching it again costs the kernel dearly: writing 1 GiB to
// a file in 64 MiB writes costs about 0.6 s of system time right after a
// similar write, 2.6-4.3 s after some seconds idle (BENCHMARKS.md,
// "Backup"). A client that runs right after another one has freed its page
// cache therefore gets cheaper memory than one that runs after a pause.
// -settle makes every client start after the same pause, and the
// shuffled order spreads what is left.
//
// # Output fields
//
// impl, target, partitions, codec, size_bytes, batch_bytes, rep: the
// configuration. topic_bytes, topic_batches, topic_records,
// topic_value_bytes: what the broker holds (batch bytes; values
// uncompressed). seconds: the child's wall time. mb_per_sec:
// topic_bytes/10^6 per second; value_mb_per_sec: the same for the values.
// cpu_s, cpu_user_s, cpu_sys_s: the child's CPU time; cpu_s_per_gib: cpu_s
// per GiB of topic_bytes. max_rss_mb: the child's peak resident set.
// bytes_seen, batches_seen, records_seen: what the client reports or its
// output proves (see each impl above); output_bytes: what it wrote.
// server_bytes, server_fetches: batch bytes and Fetch requests the broker
// served (source only). A run fails (field "error") if the client exits
// non-zero or saw fewer records, batches or bytes than the topic holds.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ktape/ktape/bench/internal/harness"
	"github.com/ktape/ktape/bench/source"
)

// childEnv, when set, makes a test binary act as this command (see
// backup_test.go's TestMain), so that the harness can re-run it.
const childEnv = "KTAPE_BENCH_BACKUP_CHILD"

func main() {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "backup: cannot find own executable:", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], self, nil, os.Stdout, os.Stderr))
}

// knownImpls is every client, in the order tables list them.
var knownImpls = []string{"ktape", "ktape-age", "ktape-auto", "kcat", "kgo", "raw"}

// defaultImpls are the clients run when -impl is not given: all but
// ktape-age, whose cost is measured on demand (see the doc comment).
var defaultImpls = []string{"ktape", "ktape-auto", "kcat", "kgo", "raw"}

// options are the parsed flags.
type options struct {
	impls      []string
	targets    []string
	sizes      []int64
	partitions []int
	codecs     []string
	batchBytes int64
	poolBytes  int64
	reps       int
	firstRep   int
	memory     int64
	ktapeBin   string
	kcatBin    string
	dir        string
	timeout    time.Duration
	settle     time.Duration
	note       string
	table      bool
	summary    bool

	// Child mode: one client run against brokers.
	child   bool
	brokers string
	topic   string
	out     string
}

var hidden = map[string]bool{"child": true, "brokers": true, "topic": true, "out": true}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	impl := fs.String("impl", strings.Join(defaultImpls, ","), "clients, comma-separated (also: ktape-age)")
	target := fs.String("target", "source", "brokers, comma-separated: source, kfake")
	sizes := fs.String("size", "1GiB", "batch bytes of the topic, comma-separated (KiB, MiB, GiB)")
	parts := fs.String("partitions", "1,8", "partitions, comma-separated")
	codecs := fs.String("codec", "none,lz4", "batch compression, comma-separated: none, gzip, snappy, lz4, zstd")
	batch := fs.String("batch-bytes", "64KiB", "records per batch, uncompressed bytes")
	pool := fs.String("pool-bytes", "64MiB", "distinct batches the source generates, uncompressed bytes")
	fs.IntVar(&o.reps, "reps", 3, "rounds of the whole matrix")
	fs.IntVar(&o.firstRep, "first-rep", 1, "number of the first round (its impl order follows from it)")
	memory := fs.String("memory", "256MiB", "ktape backup --memory, and the raw fetch loop's budget")
	fs.StringVar(&o.ktapeBin, "ktape-bin", "", "a built ktape binary (default: go build ./cmd/ktape)")
	fs.StringVar(&o.kcatBin, "kcat-bin", "kcat", "kcat executable")
	fs.StringVar(&o.dir, "dir", "", "directory for outputs, deleted after each run (default: a new temp dir)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit for one run")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "pause between the broker being ready and the client starting")
	fs.StringVar(&o.note, "note", "", "text added to every result line's note")
	fs.BoolVar(&o.table, "table", false, "read result lines on stdin and print markdown tables of their medians")
	fs.BoolVar(&o.summary, "summary", false, "with -table: one row per configuration")
	fs.BoolVar(&o.child, "child", false, "run one client (used by the harness)")
	fs.StringVar(&o.brokers, "brokers", "", "broker address (child)")
	fs.StringVar(&o.topic, "topic", source.DefaultTopic, "topic (child)")
	fs.StringVar(&o.out, "out", "", "output file (child)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./bench/backup [flags]\n\nFlags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			if !hidden[f.Name] {
				fmt.Fprintf(stderr, "  -%s\t%s (default %q)\n", f.Name, f.Usage, f.DefValue)
			}
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.impls, err = harness.ParseNames("impl", *impl, knownImpls); err != nil {
		return nil, err
	}
	if o.targets, err = harness.ParseNames("target", *target, []string{"source", "kfake"}); err != nil {
		return nil, err
	}
	if o.sizes, err = harness.ParseSizes("size", *sizes); err != nil {
		return nil, err
	}
	if o.partitions, err = harness.ParsePartitions("partitions", *parts); err != nil {
		return nil, err
	}
	if o.codecs, err = harness.ParseNames("codec", *codecs, []string{"none", "gzip", "snappy", "lz4", "zstd"}); err != nil {
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
	if o.reps < 1 {
		return nil, fmt.Errorf("-reps %d: want at least 1", o.reps)
	}
	if o.firstRep < 1 {
		return nil, fmt.Errorf("-first-rep %d: want at least 1", o.firstRep)
	}
	if o.settle < 0 {
		return nil, fmt.Errorf("-settle %v: want a duration of 0 or more", o.settle)
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("-timeout %v: want a positive duration", o.timeout)
	}
	if o.child {
		if len(o.impls) != 1 || len(o.partitions) != 1 {
			return nil, fmt.Errorf("-child takes one -impl and one -partitions")
		}
		if o.impls[0] != "kgo" && o.impls[0] != "raw" {
			return nil, fmt.Errorf("-child runs kgo or raw, not %s", o.impls[0])
		}
		if o.brokers == "" {
			return nil, fmt.Errorf("-child needs -brokers")
		}
	}
	return o, nil
}

// run is the whole command: the harness; with -child one client run; with
// a first argument serve-source or serve-kfake a broker process.
func run(args []string, self string, selfEnv []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve-source":
			return source.Run(args[1:], stdout, stderr)
		case "serve-kfake":
			return harness.ServeKfake(args[1:], stdout, stderr)
		}
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "backup:", err)
		return 2
	}
	if o.table {
		if err := writeTable(os.Stdin, stdout, o.summary); err != nil {
			fmt.Fprintln(stderr, "backup -table:", err)
			return 1
		}
		return 0
	}
	if o.child {
		if err := runChild(o, stdout); err != nil {
			fmt.Fprintln(stderr, "backup child:", err)
			return 1
		}
		return 0
	}
	h := &runner{opts: o, self: self, selfEnv: selfEnv, stdout: stdout, stderr: stderr}
	if err := h.run(); err != nil {
		fmt.Fprintln(stderr, "backup:", err)
		return 1
	}
	return 0
}
