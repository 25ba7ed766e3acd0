package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// childResult is what the kgo child prints: the records it produced and
// saw acknowledged.
type childResult struct {
	Records int64 `json:"records"`
}

// runChild replays the records file with a franz-go producer (or, for
// -impl naive, the repository -in with replayNaive) and prints a childResult.
func runChild(o *options, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	var res childResult
	var err error
	if o.impls[0] == "naive" {
		res, err = replayNaive(ctx, strings.Split(o.brokers, ","), o.topic, o.in)
	} else {
		res, err = replayKgo(ctx, strings.Split(o.brokers, ","), o.topic, o.codecs[0], o.in)
	}
	if err != nil {
		return err
	}
	line, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", line)
	return err
}

// kgoCodecs are franz-go's codecs by name.
var kgoCodecs = map[string]kgo.CompressionCodec{
	"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
	"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
}

// replayKgo is a franz-go producer as an application that replays a file
// of records would be written: its defaults but the codec, every record
// read with a bufio.Scanner (1 MiB buffer), given a key and value of its
// own and produced asynchronously, then a flush.
func replayKgo(ctx context.Context, brokers []string, topic, codec, in string) (childResult, error) {
	var res childResult
	c, ok := kgoCodecs[codec]
	if !ok {
		return res, fmt.Errorf("kgo: unknown codec %q", codec)
	}
	f, err := os.Open(in)
	if err != nil {
		return res, fmt.Errorf("kgo: %w", err)
	}
	defer f.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("ktape-bench-kgo"),
		kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(c))
	if err != nil {
		return res, fmt.Errorf("kgo: new client: %w", err)
	}
	defer cl.Close()
	var (
		mu       sync.Mutex
		acked    int64
		firstErr error
	)
	promise := func(_ *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if err == nil {
			acked++
		}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	sc.Split(splitAt(recordDelim))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), keyDelim)
		if !ok {
			return res, fmt.Errorf("kgo: record %d of %s has no key delimiter", res.Records, in)
		}
		kv := make([]byte, len(k)+len(v))
		copy(kv, k)
		copy(kv[len(k):], v)
		cl.Produce(ctx, &kgo.Record{Key: kv[:len(k):len(k)], Value: kv[len(k):]}, promise)
		res.Records++
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("kgo: read %s: %w", in, err)
	}
	if err := cl.Flush(ctx); err != nil {
		return res, fmt.Errorf("kgo: flush: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return res, fmt.Errorf("kgo: produce: %w", firstErr)
	}
	if acked != res.Records {
		return res, fmt.Errorf("kgo: %d of %d records acknowledged", acked, res.Records)
	}
	return res, nil
}

// splitAt is a bufio.SplitFunc for records ending in delim.
func splitAt(delim []byte) bufio.SplitFunc {
	return func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.Index(data, delim); i >= 0 {
			return i + len(delim), data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return 0, nil, fmt.Errorf("%d bytes after the last record delimiter", len(data))
		}
		return 0, nil, nil
	}
}
