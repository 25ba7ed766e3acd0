// Command produce measures how fast Kafka producer clients append and
// deliver records, against bench/sink, a fake broker that acknowledges
// everything at once, so that what is measured is the client.
//
// # Usage
//
//	go run ./bench/produce [flags]         (or: make bench-produce ARGS='...')
//
//	-impl         clients to run, comma-separated (default: every one
//	              available of ktape,kgo,sarama,kafkago,confluent)
//	-value-bytes  value sizes (default 25,100,1024)
//	-goroutines   appending goroutines (default 1,4)
//	-partitions   partitions of the topic (default 1,16)
//	-compression  none, gzip, snappy, lz4, zstd (default none,lz4)
//	-acks         all (idempotent, the default) or 1 (not idempotent)
//	-records      records per run (default 2,000,000, fewer for large
//	              values: at most 300 MiB of values per run)
//	-duration     run for this long instead of a record count
//	-sink-bin     a prebuilt bench/sink binary (default: go build it)
//	-verify       have the sink CRC-check every batch
//	-timeout      limit for one run (default 5m)
//	-table        read result lines (several rounds) on stdin and print
//	              markdown tables of the medians, with ratios to ktape
//	-summary      with -table: one row per configuration
//	-cpuprofile   write each run's CPU profile (timed region only) into
//	              this directory, one file per impl and configuration
//
// Every combination of the list flags is one configuration, run for each
// impl in turn; each run prints one JSON line on stdout (progress goes to
// stderr). The exit status is 1 if any run failed, 2 for bad flags.
//
// # How a run is measured
//
// Each run happens in a fresh child process (the harness re-executes itself
// with a hidden -child flag) against a fresh sink process with -partitions
// partitions, so heaps, GC state and connections never carry over. The
// child opens the client, warms it up with one record per partition
// (connections, metadata, producer id), collects garbage, and then starts
// the clock: G goroutines append records/G records each, goroutine g
// sending its i-th record to partition (g+i) mod P (explicit partitions, so
// no partitioner cost differs), nil keys, and one preallocated value slice
// reused for every record (random bytes; note that identical values in a
// batch make compression ratios unrealistically good). The timed region
// ends when the client reports every record delivered (its flush).
//
// Every client is set up comparably, as far as it has the knob: idempotent
// with acks=all, linger 5 ms, batches up to 1 MiB, 5 requests in flight,
// up to 2^20 records buffered, the compression asked. What each client uses
// and where it differs is in its file (kgo.go, sarama.go, kafkago.go,
// confluent.go) and in the "note" field of its lines. confluent is built
// only with -tags confluent,dynamic against the system librdkafka
// (Debian: apt-get install librdkafka-dev; confluent-kafka-go is pinned to
// the version matching Debian bookworm's librdkafka 2.0.2); the harness
// builds that child itself and reports confluent unavailable if it cannot.
//
// # Output fields
//
// impl, note, value_bytes, goroutines, partitions, compression, acks:
// the configuration. records: records appended in the timed region
// (warmup_records more before it). seconds: the timed region.
// records_per_sec; mb_per_sec: value bytes (10^6) per second.
// cpu_ns_per_record: the child's user+system CPU time (getrusage, every
// thread, including cgo ones) per record; cpu_cores: that CPU time over
// the wall time. allocs_per_record, bytes_alloc_per_record, gc_cycles:
// from runtime.MemStats (Mallocs, TotalAlloc, NumGC) over the timed
// region: Go heap only. append_p50_ns, append_p99_ns, append_max_ns: the
// latency of the append call itself, timed on one record in 64. max_rss_mb:
// the child's peak resident memory. sink_records, sink_batches,
// sink_requests: what the sink counted, warm-up included;
// records_per_batch = sink_records / sink_batches. A run fails (field
// "error") if the client reports a delivery error, or the sink received
// fewer records than were appended, or saw a corrupt batch.
//
// # Adding a client
//
// Write one file with an init function that calls register(name, note,
// open), where open returns a producer (see impl.go); add the name to
// knownImpls to make it part of the default list.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// childEnv, when set in the environment, makes a test binary act as the
// harness's child (see produce_test.go's TestMain).
const childEnv = "KTAPE_BENCH_PRODUCE_CHILD"

func main() {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "produce: cannot find own executable:", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], self, nil, os.Stdout, os.Stderr))
}

// options are the parsed flags.
type options struct {
	impls       []string
	implsSet    bool
	valueBytes  []int
	goroutines  []int
	partitions  []int
	compression []string
	acks        string
	records     int64
	duration    time.Duration
	sinkBin     string
	verify      bool
	timeout     time.Duration
	cpuprofile  string // harness: a directory; child: a file
	table       bool
	summary     bool

	// Child mode: one configuration (single values above), against
	// brokers.
	child   bool
	brokers string
	topic   string
}

// hidden flags are left out of the usage text.
var hidden = map[string]bool{"child": true, "brokers": true, "topic": true}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	impl := fs.String("impl", strings.Join(knownImpls, ","), "clients to run, comma-separated (default: those available)")
	vb := fs.String("value-bytes", "25,100,1024", "value sizes in bytes, comma-separated")
	gs := fs.String("goroutines", "1,4", "appending goroutines, comma-separated")
	ps := fs.String("partitions", "1,16", "partitions, comma-separated")
	cs := fs.String("compression", "none,lz4", "codecs, comma-separated: none, gzip, snappy, lz4, zstd")
	o := &options{}
	fs.StringVar(&o.acks, "acks", "all", "all (idempotent) or 1 (not idempotent)")
	fs.Int64Var(&o.records, "records", 0, "records per run (0: 2,000,000, or 300 MiB of values if less)")
	fs.DurationVar(&o.duration, "duration", 0, "run for this long instead of a record count")
	fs.StringVar(&o.sinkBin, "sink-bin", "", "prebuilt bench/sink binary (default: go build it)")
	fs.BoolVar(&o.verify, "verify", false, "have the sink CRC-check every batch")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "limit for one run")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write each run's CPU profile of its timed region into this directory")
	fs.BoolVar(&o.table, "table", false, "read result lines on stdin and print markdown tables of their medians")
	fs.BoolVar(&o.summary, "summary", false, "with -table: one row per configuration")
	fs.BoolVar(&o.child, "child", false, "run one measurement (used by the harness)")
	fs.StringVar(&o.brokers, "brokers", "", "broker address (child)")
	fs.StringVar(&o.topic, "topic", "bench", "topic (child)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./bench/produce [flags]\n\nFlags:\n")
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
	fs.Visit(func(f *flag.Flag) { o.implsSet = o.implsSet || f.Name == "impl" })

	var err error
	if o.impls, err = parseNames("impl", *impl, knownImpls); err != nil {
		return nil, err
	}
	if o.valueBytes, err = parseInts("value-bytes", *vb, 0, 64<<20); err != nil {
		return nil, err
	}
	if o.goroutines, err = parseInts("goroutines", *gs, 1, 4096); err != nil {
		return nil, err
	}
	if o.partitions, err = parseInts("partitions", *ps, 1, 100_000); err != nil {
		return nil, err
	}
	if o.compression, err = parseNames("compression", *cs, []string{"none", "gzip", "snappy", "lz4", "zstd"}); err != nil {
		return nil, err
	}
	if o.acks != "all" && o.acks != "1" {
		return nil, fmt.Errorf("-acks %q: want all or 1 (e.g. -acks all)", o.acks)
	}
	if o.records < 0 {
		return nil, fmt.Errorf("-records %d: want a positive count, or 0 for the default", o.records)
	}
	if o.duration < 0 {
		return nil, fmt.Errorf("-duration %v: want a positive duration", o.duration)
	}
	if o.records > 0 && o.duration > 0 {
		return nil, fmt.Errorf("-records and -duration both set: give one (e.g. -duration 5s)")
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("-timeout %v: want a positive duration", o.timeout)
	}
	if o.child {
		if len(o.impls) != 1 || len(o.valueBytes) != 1 || len(o.goroutines) != 1 || len(o.partitions) != 1 || len(o.compression) != 1 {
			return nil, fmt.Errorf("-child takes exactly one value per list flag")
		}
		if o.brokers == "" {
			return nil, fmt.Errorf("-child needs -brokers")
		}
	}
	return o, nil
}

func parseInts(name, s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < lo || n > hi {
			return nil, fmt.Errorf("-%s %q: want integers from %d to %d, comma-separated (e.g. -%s 1,4)", name, s, lo, hi, name)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseNames(name, s string, allowed []string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		ok := false
		for _, a := range allowed {
			ok = ok || f == a
		}
		if !ok {
			return nil, fmt.Errorf("-%s %q: %q is not one of %s", name, s, f, strings.Join(allowed, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// defaultRecords is the record count of a run when -records is 0: two
// million, or 300 MiB of values if that is fewer.
func defaultRecords(valueBytes int) int64 {
	const maxRecords, maxValueBytes = 2_000_000, 300 << 20
	if valueBytes > 0 && maxValueBytes/int64(valueBytes) < maxRecords {
		return maxValueBytes / int64(valueBytes)
	}
	return maxRecords
}

// run is the whole command: the harness, or with -child one measurement.
// self is the executable to re-run as a child, with childEnv added to its
// environment.
func run(args []string, self string, childEnv []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "produce:", err)
		return 2
	}
	if o.table {
		if err := writeTable(os.Stdin, stdout, o.summary); err != nil {
			fmt.Fprintln(stderr, "produce -table:", err)
			return 1
		}
		return 0
	}
	if o.child {
		if err := runChild(o, stdout); err != nil {
			fmt.Fprintln(stderr, "produce child:", err)
			return 1
		}
		return 0
	}
	h := &harness{opts: o, self: self, selfEnv: childEnv, stdout: stdout, stderr: stderr}
	if err := h.run(); err != nil {
		fmt.Fprintln(stderr, "produce:", err)
		return 1
	}
	return 0
}
