// Package sink is a fake Kafka broker for producer and restore benchmarks:
// it accepts everything a producer sends, counts it, and throws the record
// bytes away, answering at once so that the client, not the broker, is what
// a benchmark measures. The command is bench/sink/cmd/sink; benchmark
// harnesses that re-run themselves as their brokers call Run.
//
// It is built only on ktape's own protocol layer (packages protocol,
// protocol/api and record) and serves, on one connection goroutine per
// client with pipelined requests answered in order:
//
//   - ApiVersions: the versions ktape declares for the APIs below, and
//     for Fetch and FindCoordinator, which librdkafka needs to see before
//     it sends record batches v2 and compresses with lz4 (they are not
//     served; see advertised in handlers.go). A
//     client that sends a newer ApiVersions than ktape knows gets
//     UNSUPPORTED_VERSION at v0 with the ranges, as real brokers answer,
//     and retries at a version both know.
//   - Metadata: every requested topic led by this broker (node 1); topic
//     ids are derived from the name, so they are stable. A topic not seen
//     before is created with -partitions partitions, unless
//     -auto-create=false: then it is answered UNKNOWN_TOPIC_OR_PARTITION
//     until CreateTopics creates it. An all-topics request lists the
//     topics that exist.
//   - CreateTopics: each topic is created with the partitions asked for
//     (-1: -partitions), or answered TOPIC_ALREADY_EXISTS; configs,
//     replication factors and assignments are accepted and ignored;
//     ValidateOnly creates nothing.
//   - ListOffsets (v1+): a partition's earliest offset is 0 and its
//     latest the next offset the sink would give; lookups by timestamp
//     find no record (offset -1).
//   - InitProducerId: increasing producer ids, epoch 0.
//   - Produce: each partition's record set is walked batch by batch
//     (headers only: NumRecords is counted, records are not parsed) and
//     answered with error 0 and a base offset taken from a per-partition
//     counter advanced by the record count. With acks=0 no response is
//     sent. Legacy message sets (magic 0 and 1, which Produce below v3
//     carries) are answered with CORRUPT_MESSAGE.
//
// Any other request is logged as an error on stderr and its connection is
// closed; so is a malformed frame.
//
// Usage:
//
//	sink [-addr 127.0.0.1:0] [-partitions 16] [-topics a,b] [-auto-create=true] [-verify]
//
// -topics names topics that exist from the start (with -partitions
// partitions), for clients that ask for all topics before naming any, or
// when -auto-create=false.
//
// On start it prints "listening on HOST:PORT" and then "ready" on stdout.
// On SIGINT or SIGTERM it prints one JSON line of totals and exits 0:
//
//	{"records":N,"batches":B,"bytes":M,"requests":R,"corrupt":C,"codecs":{"lz4":B}}
//
// records and batches count what Produce requests carried; bytes is the
// size of their record sets; codecs counts the batches by compression; requests counts every request answered (or,
// for acks=0, accepted); corrupt counts batches with bad framing, and with
// -verify also batches whose CRC-32C or header does not check out (they are
// still acknowledged, so that a client does not retry them forever; a
// benchmark must treat corrupt > 0 as a failure).
package sink

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Totals are the sink's counters, printed as one JSON line when Run ends.
type Totals struct {
	Records  int64 `json:"records"`
	Batches  int64 `json:"batches"`
	Bytes    int64 `json:"bytes"`
	Requests int64 `json:"requests"`
	Corrupt  int64 `json:"corrupt"`
	// Codecs counts the batches received by compression codec name.
	Codecs map[string]int64 `json:"codecs"`
}

// Run is the sink command: it parses args, serves until SIGINT or SIGTERM,
// then prints its Totals as one JSON line on stdout and returns 0. It
// returns 2 for bad flags and 1 for other failures.
func Run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	partitions := fs.Int("partitions", defaultPartitions, "partitions of every topic created by Metadata or -topics")
	verify := fs.Bool("verify", false, "CRC-check every batch and count corrupt ones")
	topics := fs.String("topics", "", "topics that exist from the start, comma-separated")
	autoCreate := fs.Bool("auto-create", true, "create a topic when Metadata first names it")
	maxFrame := fs.Int("max-frame", defaultMaxFrame, "largest request accepted, in bytes")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sink: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := config{Partitions: *partitions, Verify: *verify, NoAutoCreate: !*autoCreate, MaxFrame: *maxFrame, Log: log}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(stderr, "sink:", err)
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "sink: listen on %s: %v\n", *addr, err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	s := newSink(cfg)
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			s.topics.create(t, cfg.Partitions)
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.serve(ln) }()
	fmt.Fprintf(stdout, "listening on %s\nready\n", ln.Addr())

	code := 0
	select {
	case <-sigs:
	case err := <-done:
		log.Error("accept loop ended", "err", err)
		code = 1
	}
	s.close()
	out, err := json.Marshal(s.totals())
	if err != nil {
		fmt.Fprintln(stderr, "sink: encode totals:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return code
}
