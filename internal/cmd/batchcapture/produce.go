package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// baseTS is the timestamp (ms) the standard records are stamped around:
// 2023-11-14T22:13:20Z. The same set is written by gen.sh's Python producers.
const baseTS = 1700000000000

// standardBatches returns the standard record set as two batches: null,
// empty and binary keys and values, null and empty header values, repeated
// header keys, a timestamp before the batch's first (negative delta), and
// UTF-8 text. Each batch has a compressible value, because librdkafka sends
// a batch uncompressed when compression does not make it smaller.
func standardBatches() [][]*kgo.Record {
	ts := func(ms int64) time.Time { return time.UnixMilli(ms) }
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	a := []*kgo.Record{
		{Key: []byte("key-0"), Value: []byte("value-0"), Timestamp: ts(baseTS), Headers: []kgo.RecordHeader{
			{Key: "h1", Value: []byte("x")}, {Key: "h-null", Value: nil}, {Key: "h-empty", Value: []byte{}},
		}},
		{Key: nil, Value: []byte("value with a null key"), Timestamp: ts(baseTS + 1)},
		{Key: []byte("key-2"), Value: nil, Timestamp: ts(baseTS + 2), Headers: []kgo.RecordHeader{{Key: "h1", Value: []byte("tombstone")}}},
		{Key: []byte("key-3"), Value: []byte{}, Timestamp: ts(baseTS + 3)},
		{Key: []byte{}, Value: []byte("empty key"), Timestamp: ts(baseTS + 4)},
		{Key: []byte("key-5"), Value: []byte(strings.Repeat("ktape compressible payload. ", 16)), Timestamp: ts(baseTS + 5), Headers: []kgo.RecordHeader{
			{Key: "dup", Value: []byte("1")}, {Key: "dup", Value: []byte("2")}, {Key: "trace", Value: []byte("0123abcd")},
		}},
		{Key: []byte{0x00, 0x01, 0xfe, 0xff}, Value: all, Timestamp: ts(baseTS - 1000), Headers: []kgo.RecordHeader{{Key: "bin", Value: []byte{0x00, 0xff}}}},
		{Key: []byte("key-7"), Value: []byte("héllo wörld ✓"), Timestamp: ts(baseTS + 7)},
	}
	b := []*kgo.Record{
		{Key: []byte("key-8"), Value: []byte("second batch: " + strings.Repeat("abcdefgh", 24)), Timestamp: ts(baseTS + 100)},
		{Key: nil, Value: nil, Timestamp: ts(baseTS + 101)},
		{Key: []byte("key-10"), Value: []byte("last"), Timestamp: ts(baseTS + 102), Headers: []kgo.RecordHeader{{Key: "h-null", Value: nil}}},
	}
	return [][]*kgo.Record{a, b}
}

// manyRecords returns n records for one big batch: varied key and value
// sizes, a null value every 100th record, a header every 50th.
func manyRecords(n int, partition int32) []*kgo.Record {
	rs := make([]*kgo.Record, n)
	for i := range rs {
		r := &kgo.Record{
			Partition: partition,
			Key:       fmt.Appendf(nil, "many-%03d", i),
			Value:     fmt.Appendf(nil, "record %d of %d: %s", i, n, strings.Repeat("ab", i%17)),
			Timestamp: time.UnixMilli(baseTS + int64(i)),
		}
		if i%100 == 99 {
			r.Value = nil
		}
		if i%50 == 0 {
			r.Headers = []kgo.RecordHeader{{Key: "index", Value: fmt.Appendf(nil, "%d", i)}}
		}
		rs[i] = r
	}
	return rs
}

var codecs = []struct {
	name  string
	codec kgo.CompressionCodec
}{
	{"none", kgo.NoCompression()},
	{"gzip", kgo.GzipCompression()},
	{"snappy", kgo.SnappyCompression()},
	{"lz4", kgo.Lz4Compression()},
	{"zstd", kgo.ZstdCompression()},
}

func produceKgo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("produce-kgo", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:19092", "comma-separated bootstrap brokers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	seeds := splitBrokers(*brokers)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	// Every client buffers until Flush, so each Flush writes exactly one
	// batch per partition: batch boundaries do not depend on timing.
	base := func(topic string, extra ...kgo.Opt) []kgo.Opt {
		return append([]kgo.Opt{
			kgo.SeedBrokers(seeds...),
			kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ManualFlushing(),
		}, extra...)
	}

	for _, c := range codecs {
		topic := "kgo-" + c.name
		if err := withClient(base(topic, kgo.DisableIdempotentWrite(), kgo.ProducerBatchCompression(c.codec)), func(cl *kgo.Client) error {
			if err := warm(ctx, cl, topic); err != nil {
				return err
			}
			for _, b := range standardBatches() {
				if err := produceFlush(ctx, cl, b); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("%s: %w", topic, err)
		}
	}

	// The default producer: idempotent, snappy.
	if err := withClient(base("kgo-idempotent"), func(cl *kgo.Client) error {
		if err := warm(ctx, cl, "kgo-idempotent"); err != nil {
			return err
		}
		for _, b := range standardBatches() {
			if err := produceFlush(ctx, cl, b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("kgo-idempotent: %w", err)
	}

	// Transactions: commit the first batch, abort the second, commit two
	// more records, all in partition 0.
	if err := withClient(base("kgo-txn", kgo.TransactionalID("ktape-kgo-txn"), kgo.ProducerBatchCompression(kgo.NoCompression())), func(cl *kgo.Client) error {
		bs := standardBatches()
		third := []*kgo.Record{
			{Key: []byte("after-abort-0"), Value: []byte("committed after the abort"), Timestamp: time.UnixMilli(baseTS + 200)},
			{Key: []byte("after-abort-1"), Value: nil, Timestamp: time.UnixMilli(baseTS + 201)},
		}
		for i, b := range [][]*kgo.Record{bs[0], bs[1], third} {
			if err := cl.BeginTransaction(); err != nil {
				return err
			}
			if err := produceFlush(ctx, cl, b); err != nil {
				return err
			}
			end := kgo.TryCommit
			if i == 1 {
				end = kgo.TryAbort
			}
			if err := cl.EndTransaction(ctx, end); err != nil {
				return fmt.Errorf("ending transaction %d: %w", i, err)
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("kgo-txn: %w", err)
	}

	// Many records in one batch: partition 0 uncompressed, partition 1 zstd.
	for p, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.ZstdCompression()} {
		if err := withClient(base("kgo-many", kgo.DisableIdempotentWrite(), kgo.ProducerBatchCompression(codec)), func(cl *kgo.Client) error {
			if err := warm(ctx, cl, "kgo-many"); err != nil {
				return err
			}
			return produceFlush(ctx, cl, manyRecords(500, int32(p)))
		}); err != nil {
			return fmt.Errorf("kgo-many partition %d: %w", p, err)
		}
	}
	return nil
}

func withClient(opts []kgo.Opt, fn func(*kgo.Client) error) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(cl)
}

// warm makes the client load the topic's metadata before the fixture's
// records are produced: a record for a partition that does not exist fails
// as soon as the partitions are known, and nothing is written. Without it,
// records produced while the metadata arrives can be split over two
// batches. (It cannot be used inside a transaction.)
func warm(ctx context.Context, cl *kgo.Client, topic string) error {
	done := make(chan error, 1)
	cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: 1 << 20, Value: []byte("warm-up")}, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err := <-done:
		if err == nil {
			return errors.New("warm-up record to a missing partition was accepted")
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// produceFlush buffers rs, flushes them as one batch per partition and
// returns the first produce error.
func produceFlush(ctx context.Context, cl *kgo.Client, rs []*kgo.Record) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, r := range rs {
		wg.Add(1)
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("record %q: %w", r.Key, err))
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	wg.Wait()
	return errors.Join(errs...)
}
