// Command batchcapture writes and captures the record-batch fixtures in
// testdata/batches. It is run by testdata/batches/gen.sh against a
// kfakeserver on loopback and is not part of the ktape binary.
//
// Subcommands:
//
//	batchcapture produce-kgo -brokers ADDR
//	    produces the franz-go (kgo) fixtures: topics kgo-{none,gzip,snappy,lz4,zstd},
//	    kgo-idempotent, kgo-txn and kgo-many (2 partitions); the topics must exist.
//
//	batchcapture capture -brokers ADDR -out DIR -writer TEXT [-notes TEXT] TOPIC...
//	    for each topic and partition: a raw Fetch (READ_UNCOMMITTED, from offset 0)
//	    whose RecordBatches bytes are written unchanged to DIR/<topic>.p<partition>.bin,
//	    and a kgo consumer (control records kept) whose records, together with the
//	    batch headers parsed with kmsg.RecordBatch, are written to DIR/<topic>.json
//	    in the format of package internal/testfixtures.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx := context.Background()
	var err error
	switch os.Args[1] {
	case "produce-kgo":
		err = produceKgo(ctx, os.Args[2:])
	case "capture":
		err = capture(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "batchcapture %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: batchcapture produce-kgo -brokers ADDR")
	fmt.Fprintln(os.Stderr, "       batchcapture capture -brokers ADDR -out DIR -writer TEXT [-notes TEXT] TOPIC...")
	os.Exit(2)
}

func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
