// Command source is a Kafka broker for backup and consumer benchmarks: it
// generates one topic of v2 record batches in memory and serves it with
// vectored, uncopied Fetch responses, so that what a benchmark measures is
// the client. What it serves, and how, is in the doc of package
// github.com/ktape/ktape/bench/source.
//
// Usage:
//
//	source [-addr 127.0.0.1:0] [-topic bench] [-partitions 1] [-size 1GiB]
//	       [-value-bytes 1024] [-key-bytes 8] [-batch-bytes 64KiB]
//	       [-codec none|gzip|snappy|lz4|zstd] [-pool-bytes 64MiB] [-seed 1]
//	       [-idle-wait 10ms]
//
// It prints the topic's totals as one JSON line, "listening on HOST:PORT"
// and "ready"; on SIGINT or SIGTERM it prints its counters as one JSON line
// ({"requests","fetches","batches","bytes","errors"}) and exits 0.
package main

import (
	"os"

	"github.com/ktape/ktape/bench/source"
)

func main() { os.Exit(source.Run(os.Args[1:], os.Stdout, os.Stderr)) }
