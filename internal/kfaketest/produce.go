package kfaketest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Timeout bounds each helper's work against the cluster.
const Timeout = 10 * time.Second

// Txn says whether ProduceWith writes in a transaction, and how it ends.
type Txn uint8

const (
	NoTxn  Txn = iota // not transactional (but idempotent, kgo's default)
	Commit            // one transaction, committed
	Abort             // one transaction, aborted
)

// ProduceOptions are ProduceWith's settings; the zero value is Produce's.
type ProduceOptions struct {
	// Compression is the batch codec, e.g. kgo.ZstdCompression(); the zero
	// value is no compression.
	Compression kgo.CompressionCodec
	// Txn writes the records in one transaction and commits or aborts it.
	Txn Txn
}

var txnSeq atomic.Uint64

// Produce writes records to one partition of topic, uncompressed, with an
// idempotent kgo producer, and fails t if any record is not acknowledged.
// It sets each record's Topic and Partition; kgo fills in Offset (and
// Timestamp, if zero) as it does for any produced record. kgo decides how
// the records are split into batches.
func (c *Cluster) Produce(t testing.TB, topic string, partition int32, records ...*kgo.Record) {
	t.Helper()
	c.ProduceWith(t, ProduceOptions{}, topic, partition, records...)
}

// ProduceWith is Produce with a codec or a transaction.
func (c *Cluster) ProduceWith(t testing.TB, o ProduceOptions, topic string, partition int32, records ...*kgo.Record) {
	t.Helper()
	opts := []kgo.Opt{
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(o.Compression),
	}
	if o.Txn != NoTxn {
		opts = append(opts, kgo.TransactionalID(fmt.Sprintf("kfaketest-%d", txnSeq.Add(1))))
	}
	cl := c.newClient(t, opts...)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()

	for _, r := range records {
		r.Topic, r.Partition = topic, partition
	}
	if o.Txn != NoTxn {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("kfaketest: begin transaction: %v", err)
		}
	}
	// Every result is checked: a produce error is otherwise silent.
	for i, res := range cl.ProduceSync(ctx, records...) {
		if res.Err != nil {
			t.Fatalf("kfaketest: produce record %d of %d to %s/%d: %v", i, len(records), topic, partition, res.Err)
		}
	}
	if o.Txn != NoTxn {
		end := kgo.TryCommit
		if o.Txn == Abort {
			end = kgo.TryAbort
		}
		if err := cl.EndTransaction(ctx, end); err != nil {
			t.Fatalf("kfaketest: end transaction (commit %v): %v", end, err)
		}
	}
}

// ConsumeAll reads every partition of topic from its log start offset to
// the end offset it has when ConsumeAll begins, and returns the records
// sorted by partition and offset. Records are decoded by kgo's own fetch
// decoder (kgo.ProcessFetchPartition), which checks each batch's CRC and
// decompresses; control records are left out.
//
// isolation is kgo.ReadUncommitted() (the default: read to the high
// watermark, aborted records included) or kgo.ReadCommitted() (read to the
// last stable offset, aborted records left out).
func (c *Cluster) ConsumeAll(t testing.TB, topic string, isolation ...kgo.IsolationLevel) []*kgo.Record {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if len(isolation) > 0 {
		iso = isolation[0]
	}
	var level int8
	if iso == kgo.ReadCommitted() {
		level = 1
	}
	cl := c.newClient(t)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()

	// Partitions and leaders.
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("kfaketest: metadata for %s: %v", topic, err)
	}
	if len(mresp.Topics) != 1 {
		t.Fatalf("kfaketest: metadata for %s: %d topics in the response", topic, len(mresp.Topics))
	}
	mtopic := mresp.Topics[0]
	if err := kerr.ErrorForCode(mtopic.ErrorCode); err != nil {
		t.Fatalf("kfaketest: metadata for %s: %v", topic, err)
	}
	leaders := make(map[int32]int32, len(mtopic.Partitions))
	for _, p := range mtopic.Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			t.Fatalf("kfaketest: metadata for %s/%d: %v", topic, p.Partition, err)
		}
		leaders[p.Partition] = p.Leader
	}

	// Where each partition starts and ends.
	start := listOffsets(t, ctx, cl, topic, leaders, -2, level)
	end := listOffsets(t, ctx, cl, topic, leaders, -1, level)

	var out []*kgo.Record
	for _, p := range slices.Sorted(maps.Keys(leaders)) {
		out = append(out, fetchPartition(t, ctx, cl, topic, mtopic.TopicID, p, leaders[p], start[p], end[p], iso, level)...)
	}
	slices.SortStableFunc(out, func(a, b *kgo.Record) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return out
}

// listOffsets returns each partition's offset for timestamp ts (-2 log
// start, -1 end: the high watermark, or the last stable offset at level 1).
func listOffsets(t testing.TB, ctx context.Context, cl *kgo.Client, topic string, leaders map[int32]int32, ts int64, level int8) map[int32]int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = level
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range leaders {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = ts
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl) // kgo sends each partition to its leader
	if err != nil {
		t.Fatalf("kfaketest: list offsets (%d) for %s: %v", ts, topic, err)
	}
	got := make(map[int32]int64, len(leaders))
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				t.Fatalf("kfaketest: list offsets (%d) for %s/%d: %v", ts, topic, rp.Partition, err)
			}
			got[rp.Partition] = rp.Offset
		}
	}
	if len(got) != len(leaders) {
		t.Fatalf("kfaketest: list offsets (%d) for %s: %d of %d partitions answered", ts, topic, len(got), len(leaders))
	}
	return got
}

// fetchPartition fetches [from, to) of one partition from its leader.
func fetchPartition(t testing.TB, ctx context.Context, cl *kgo.Client, topic string, topicID [16]byte,
	partition, leader int32, from, to int64, iso kgo.IsolationLevel, level int8) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	for off := from; off < to; {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis = 500
		req.MinBytes = 1
		req.MaxBytes = 64 << 20
		req.IsolationLevel = level
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, topicID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = partition
		rp.FetchOffset = off
		rp.PartitionMaxBytes = 32 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)

		resp, err := req.RequestWith(ctx, cl.Broker(int(leader)))
		if err != nil {
			t.Fatalf("kfaketest: fetch %s/%d at %d: %v", topic, partition, off, err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			t.Fatalf("kfaketest: fetch %s/%d at %d: %v", topic, partition, off, err)
		}
		var got *kmsg.FetchResponseTopicPartition
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].Partition == partition {
					got = &resp.Topics[i].Partitions[j]
				}
			}
		}
		if got == nil {
			t.Fatalf("kfaketest: fetch %s/%d at %d: partition missing from the response", topic, partition, off)
		}
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Topic:          topic,
			Partition:      partition,
			Offset:         off,
			IsolationLevel: iso,
		}, got, kgo.DefaultDecompressor(), nil)
		if fp.Err != nil {
			t.Fatalf("kfaketest: fetch %s/%d at %d: %v", topic, partition, off, fp.Err)
		}
		if next <= off {
			t.Fatalf("kfaketest: fetch %s/%d at %d: no progress toward end offset %d (high watermark %d, last stable %d)",
				topic, partition, off, to, got.HighWatermark, got.LastStableOffset)
		}
		for _, r := range fp.Records {
			if r.Offset < to { // leave out what arrived after ConsumeAll began
				out = append(out, r)
			}
		}
		off = next
	}
	return out
}
