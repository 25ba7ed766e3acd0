// Command restore measures how fast Kafka clients write a topic back into
// a broker: ktape restore from a local repository, against kcat and a
// franz-go producer replaying the same records from a file. The broker is
// bench/sink, which acknowledges every batch and throws it away so that
// the client is what is measured, or franz-go's kfake for comparison.
//
// # Usage
//
//	go run ./bench/restore [flags]          (or: make bench-restore ARGS='...')
//
//	-impl         clients, comma-separated (default ktape,kcat,kgo; also
//	              ktape-age, naive)
//	-target       brokers, comma-separated: sink, kfake (default sink)
//	-size         batch bytes of the topic, comma-separated (default 1GiB)
//	-partitions   partitions, comma-separated (default 1,8)
//	-codec        batch compression, comma-separated (default none,lz4)
//	-batch-bytes  records per batch, uncompressed (default 64KiB)
//	-pool-bytes   distinct batches the source generates (default 64MiB)
//	-reps         rounds of the whole matrix (default 3)
//	-memory       ktape restore --memory, and ktape backup's while
//	              preparing (default 256MiB)
//	-verify       the sink checks every batch's CRC (default true)
//	-ktape-bin    a built ktape (default: go build ./cmd/ktape)
//	-kcat-bin     kcat (default: kcat on PATH)
//	-dir          work directory, deleted at the end (default: a temp dir)
//	-inputs       where prepared inputs are kept and found again (default:
//	              inside -dir, so deleted)
//	-settle       pause between the broker being ready and the client
//	              starting (default 3s; see bench/backup's "The machine")
//	-note         text added to every line's note (e.g. which ktape build)
//	-timeout      limit for one run (default 10m)
//	-table        read result lines on stdin and print markdown tables of
//	              their medians, with ratios to ktape
//	-summary      with -table: one row per configuration
//
// Each run prints one JSON line on stdout; progress goes to stderr. The exit
// status is 1 if any run failed, 2 for bad flags.
//
// # Inputs
//
// Before any run, each (size, partitions, codec) is prepared once and kept
// under -inputs: bench/source generates the topic (1 KiB log-line-like
// values, 8-byte keys, every batch the same number of records; this
// program re-run as "serve-source"), and
//
//   - for ktape, "ktape backup --brokers ADDR --repo DIR --json
//     --compression none" copies it into a local repository, checked by
//     its manifest (every offset, batch and byte);
//   - for ktape-age, "ktape keygen" makes an age key (kept as age.key
//     beside the repositories) and the same backup, with "--encrypt-to
//     RECIPIENT --identity-file age.key", goes into a second repository
//     (repo-age), encrypted at rest; its manifest is checked the same way,
//     read with the key, and the repository must be encrypted;
//   - for kcat and kgo, the same records (package source regenerates them,
//     partition by partition, in offset order) are written to a file, each
//     as key, keyDelim, value, recordDelim; the delimiters are the bytes
//     F1 F2 F3 F4 and F5 F6 F7 F8, which values (ASCII text) never hold;
//     preparing fails if a key does.
//
// # How a run is measured
//
// Every run starts a fresh broker process: this program re-run as
// "serve-sink" (bench/sink with -verify and -auto-create=false) or
// "serve-kfake" (franz-go's kfake, empty). For kcat and kgo the topic
// exists beforehand with the topic's partition count; ktape restore
// creates it (CreateTopics), as it would on a new cluster. Then the client
// runs as a fresh process under bench/internal/launch, which reports its
// CPU time and peak RSS (getrusage of the child: its own, not inflated by
// a large parent) and its wall time, start-up included. Rounds run the
// whole matrix in turn, each round in its own shuffled order of impls;
// -table reports medians.
//
//   - ktape: "ktape restore --brokers ADDR --repo DIR --backup latest
//     --json --memory M", after removing the restore log (restores/) an
//     earlier run left in the repository, so that each run is a new
//     restore. Its restore_done line must report every batch, record and
//     byte of the topic.
//   - ktape-age: the same command on the encrypted repository, with
//     "--identity-file age.key" added: what encryption at rest costs a
//     restore. Checked as ktape is, by its restore_done line and by what
//     the broker received. Not in the default -impl (make bench-restore
//     stays as long as it was).
//   - kcat: "kcat -P -b ADDR -t TOPIC -K KD -D RD -q -X
//     enable.idempotence=true -X linger.ms=5 -X batch.size=1000000
//     [-z lz4]" with the records file on stdin (Debian's kcat; linger and
//     batch size are librdkafka's defaults, spelled out; idempotence on, as
//     ktape restore's and franz-go's producers are). Records are
//     partitioned by their keys (librdkafka's default partitioner).
//   - kgo: a franz-go producer (this program re-run with -child), its
//     defaults (idempotent, 10 ms linger, 1 MB batches, partitions by key
//     hash) but compression set to the topic's codec, reading the file
//     with a bufio.Scanner (1 MiB buffer) and producing every record with
//     a key and value of their own (one allocation), then flushing.
//
// The broker must then hold every record: the sink counts the records of
// the batches it acknowledged (and with -verify finds no corrupt batch),
// kfake the sum of its partitions' high watermarks. For ktape the sink
// must also have received exactly the topic's batches and bytes.
//
// # Output fields
//
// impl, target, partitions, codec, size_bytes, batch_bytes, rep: the
// configuration. topic_bytes, topic_batches, topic_records,
// topic_value_bytes: the topic restored (batch bytes; values
// uncompressed). input_bytes: what the client reads (the repository, or
// the records file). seconds: the child's wall time. mb_per_sec:
// topic_bytes/10^6 per second, for every impl (kcat and kgo make batches
// of their own, whose sizes target_bytes gives); value_mb_per_sec: the same
// for the values. cpu_s, cpu_user_s, cpu_sys_s: the child's CPU time;
// cpu_s_per_gib: cpu_s per GiB of topic_bytes. max_rss_mb: the child's
// peak resident set. records_sent: what the client reports delivered (ktape, kgo).
// target_records, target_batches, target_bytes,
// target_requests: what the broker received (the sink; kfake gives only
// records). A run fails (field "error") if the client exits non-zero or
// the broker did not receive every record, or (the sink) a batch not in
// the topic's codec.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ktape/ktape/bench/internal/harness"
	"github.com/ktape/ktape/bench/sink"
	"github.com/ktape/ktape/bench/source"
)

// childEnv, when set, makes a test binary act as this command (see
// restore_test.go's TestMain), so that the harness can re-run it.
const childEnv = "KTAPE_BENCH_RESTORE_CHILD"

func main() {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "restore: cannot find own executable:", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], self, nil, os.Stdout, os.Stderr))
}

// knownImpls is every client, in the order tables list them.
var knownImpls = []string{"ktape", "ktape-age", "kcat", "kgo", "naive"}

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
	memory     int64
	verify     bool
	ktapeBin   string
	kcatBin    string
	dir        string
	inputs     string
	timeout    time.Duration
	settle     time.Duration
	note       string
	table      bool
	summary    bool

	// Child mode: the kgo replayer against brokers.
	child   bool
	brokers string
	topic   string
	in      string
}

var hidden = map[string]bool{"child": true, "brokers": true, "topic": true, "in": true}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	impl := fs.String("impl", "ktape,kcat,kgo", "clients, comma-separated")
	target := fs.String("target", "sink", "brokers, comma-separated: sink, kfake")
	sizes := fs.String("size", "1GiB", "batch bytes of the topic, comma-separated (KiB, MiB, GiB)")
	parts := fs.String("partitions", "1,8", "partitions, comma-separated")
	codecs := fs.String("codec", "none,lz4", "batch compression, comma-separated: none, gzip, snappy, lz4, zstd")
	batch := fs.String("batch-bytes", "64KiB", "records per batch, uncompressed bytes")
	pool := fs.String("pool-bytes", "64MiB", "distinct batches the source generates, uncompressed bytes")
	fs.IntVar(&o.reps, "reps", 3, "rounds of the whole matrix")
	memory := fs.String("memory", "256MiB", "ktape restore --memory (and ktape backup's, preparing)")
	fs.BoolVar(&o.verify, "verify", true, "the sink CRC-checks every batch")
	fs.StringVar(&o.ktapeBin, "ktape-bin", "", "a built ktape binary (default: go build ./cmd/ktape)")
	fs.StringVar(&o.kcatBin, "kcat-bin", "kcat", "kcat executable")
	fs.StringVar(&o.dir, "dir", "", "work directory, deleted at the end (default: a new temp dir)")
	fs.StringVar(&o.inputs, "inputs", "", "directory where prepared inputs are kept and reused (default: inside the work dir)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit for one run")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "pause between the broker being ready and the client starting")
	fs.StringVar(&o.note, "note", "", "text added to every result line's note")
	fs.BoolVar(&o.table, "table", false, "read result lines on stdin and print markdown tables of their medians")
	fs.BoolVar(&o.summary, "summary", false, "with -table: one row per configuration")
	fs.BoolVar(&o.child, "child", false, "run the kgo replayer (used by the harness)")
	fs.StringVar(&o.brokers, "brokers", "", "broker address (child)")
	fs.StringVar(&o.topic, "topic", source.DefaultTopic, "topic (child)")
	fs.StringVar(&o.in, "in", "", "records file (child)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./bench/restore [flags]\n\nFlags:\n")
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
	if o.targets, err = harness.ParseNames("target", *target, []string{"sink", "kfake"}); err != nil {
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
	switch {
	case o.reps < 1:
		return nil, fmt.Errorf("-reps %d: want at least 1", o.reps)
	case o.settle < 0:
		return nil, fmt.Errorf("-settle %v: want a duration of 0 or more", o.settle)
	case o.timeout <= 0:
		return nil, fmt.Errorf("-timeout %v: want a positive duration", o.timeout)
	case o.memory < 8<<20:
		return nil, fmt.Errorf("-memory %d: ktape wants at least 8MiB", o.memory)
	}
	if o.child {
		if len(o.impls) != 1 || (o.impls[0] != "kgo" && o.impls[0] != "naive") || len(o.codecs) != 1 {
			return nil, fmt.Errorf("-child runs -impl kgo or naive with one -codec")
		}
		if o.brokers == "" || o.in == "" {
			return nil, fmt.Errorf("-child needs -brokers and -in")
		}
	}
	return o, nil
}

// run is the whole command: the harness; with -child the kgo replayer;
// with a first argument serve-source, serve-sink or serve-kfake a broker
// process, with write-records the maker of a records file.
func run(args []string, self string, selfEnv []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve-source":
			return source.Run(args[1:], stdout, stderr)
		case "serve-sink":
			return sink.Run(args[1:], stdout, stderr)
		case "serve-kfake":
			return harness.ServeKfake(args[1:], stdout, stderr)
		case "write-records":
			return writeRecords(args[1:], stdout, stderr)
		}
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "restore:", err)
		return 2
	}
	if o.table {
		if err := writeTable(os.Stdin, stdout, o.summary); err != nil {
			fmt.Fprintln(stderr, "restore -table:", err)
			return 1
		}
		return 0
	}
	if o.child {
		if err := runChild(o, stdout); err != nil {
			fmt.Fprintln(stderr, "restore child:", err)
			return 1
		}
		return 0
	}
	r := &runner{opts: o, self: self, selfEnv: selfEnv, stdout: stdout, stderr: stderr}
	if err := r.run(); err != nil {
		fmt.Fprintln(stderr, "restore:", err)
		return 1
	}
	return 0
}
