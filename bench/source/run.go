package source

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ktape/ktape/record"
)

// TopicInfo is the line Run prints about the topic before "ready".
type TopicInfo struct {
	Topic           string  `json:"topic"`
	Partitions      int     `json:"partitions"`
	Codec           string  `json:"codec"`
	Records         int64   `json:"records"`
	Batches         int64   `json:"batches"`
	Bytes           int64   `json:"bytes"` // batch bytes
	ValueBytes      int64   `json:"value_bytes"`
	RecordsPerBatch int64   `json:"records_per_batch"`
	PoolBatches     int     `json:"pool_batches"`
	PoolBytes       int     `json:"pool_bytes"`
	GenerateSeconds float64 `json:"generate_seconds"`
}

// Info describes t.
func (t *Topic) Info() TopicInfo {
	records, batches, bytes := t.Totals()
	return TopicInfo{Topic: t.Name(), Partitions: t.NumPartitions(), Codec: t.cfg.Codec.String(),
		Records: records, Batches: batches, Bytes: bytes, ValueBytes: records * int64(t.cfg.ValueBytes),
		RecordsPerBatch: t.perB, PoolBatches: t.PoolBatches(), PoolBytes: t.PoolBytes()}
}

// Run is the source command (bench/source/cmd/source, and the benchmark
// harnesses that re-run themselves as one): it parses args, generates the
// topic, serves it, and on SIGINT or SIGTERM prints its Stats as one JSON
// line and returns 0. Before serving it prints the TopicInfo as one JSON
// line, "listening on HOST:PORT" and "ready". It returns 2 for bad flags
// and 1 for other failures.
func Run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("source", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	topicConfig := TopicFlags(fs)
	idle := fs.Duration("idle-wait", DefaultIdleWait, "longest wait of a fetch that finds no data (negative: none)")
	maxFrame := fs.Int("max-frame", DefaultMaxFrame, "largest request accepted, in bytes")
	fetchDelay := fs.Duration("fetch-delay", 0, "hold every Fetch this long before answering it (slows a small topic down for tests)")
	partMax := fs.Int("partition-max-bytes", 0, "when positive, the most batch bytes a Fetch returns per partition (beyond the first batch)")
	groups := fs.String("groups", "", "forward JoinGroup, SyncGroup, Heartbeat and LeaveGroup to the broker at this address")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	tc, err := topicConfig()
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(stderr, "source:", err)
		return 2
	}
	start := time.Now()
	t, err := Generate(tc)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	info := t.Info()
	info.GenerateSeconds = time.Since(start).Round(time.Millisecond).Seconds()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	s, err := NewServer(t, ServerConfig{MaxFrame: *maxFrame, IdleWait: *idle, Log: log, Groups: *groups,
		FetchDelay: *fetchDelay, PartitionMaxBytes: *partMax})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "source: listen on %s: %v\n", *addr, err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	line, err := json.Marshal(info)
	if err != nil {
		fmt.Fprintln(stderr, "source: encode topic info:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\nlistening on %s\nready\n", line, ln.Addr())

	code := 0
	select {
	case <-sigs:
	case err := <-done:
		log.Error("accept loop ended", "err", err)
		code = 1
	}
	s.Close()
	line, err = json.Marshal(s.Stats())
	if err != nil {
		fmt.Fprintln(stderr, "source: encode stats:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", line)
	return code
}

// TopicFlags registers the flags that describe a topic on fs (-topic,
// -partitions, -size, -value-bytes, -key-bytes, -batch-bytes, -codec,
// -pool-bytes, -seed) and returns the function that makes the TopicConfig
// once fs is parsed. Other commands that need the same topic (the backup
// benchmark's kfake server) take the same flags.
func TopicFlags(fs *flag.FlagSet) func() (TopicConfig, error) {
	var tc TopicConfig
	fs.StringVar(&tc.Name, "topic", DefaultTopic, "topic name")
	fs.IntVar(&tc.Partitions, "partitions", 1, "partitions")
	size := fs.String("size", "1GiB", "batch bytes of the whole topic (suffixes KiB, MiB, GiB)")
	fs.IntVar(&tc.ValueBytes, "value-bytes", DefaultValueBytes, "bytes of every record value")
	fs.IntVar(&tc.KeyBytes, "key-bytes", DefaultKeyBytes, "bytes of every record key")
	batch := fs.String("batch-bytes", "64KiB", "records (uncompressed) per batch, in bytes")
	codec := fs.String("codec", "none", "batch compression: none, gzip, snappy, lz4, zstd")
	pool := fs.String("pool-bytes", "64MiB", "distinct batches to generate (uncompressed records), reused cyclically")
	fs.Uint64Var(&tc.Seed, "seed", 1, "seed of the generated values")
	return func() (TopicConfig, error) {
		var err error
		if tc.Bytes, err = ParseSize("-size", *size); err != nil {
			return tc, err
		}
		b, err := ParseSize("-batch-bytes", *batch)
		if err != nil {
			return tc, err
		}
		tc.BatchBytes = int(min(b, 1<<30))
		if tc.PoolBytes, err = ParseSize("-pool-bytes", *pool); err != nil {
			return tc, err
		}
		tc.Codec, err = ParseCodec(*codec)
		return tc, err
	}
}

// ParseSize reads a byte count with an optional KiB, MiB or GiB suffix
// (a decimal number before GiB is allowed: 0.5GiB).
func ParseSize(flagName, s string) (int64, error) {
	mult := 1.0
	num := strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 || f*mult > 1<<50 {
		return 0, fmt.Errorf("%s %q: want a positive size such as 1GiB, 64KiB or 4096", flagName, s)
	}
	return int64(f * mult), nil
}

// ParseCodec reads a codec name.
func ParseCodec(s string) (record.Codec, error) {
	for c := record.None; c <= record.Zstd; c++ {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("codec %q: want none, gzip, snappy, lz4 or zstd", s)
}
