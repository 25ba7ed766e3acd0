package kfaketest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/twmb/franz-go/pkg/kgo"
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
// decoder (kgo.ProcessFetchPartition, through internal/crosscheck), which
// checks each batch's CRC and decompresses; control records are left out.
//
// isolation is kgo.ReadUncommitted() (the default: read to the high
// watermark, aborted records included) or kgo.ReadCommitted() (read to the
// last stable offset, aborted records left out).
func (c *Cluster) ConsumeAll(t testing.TB, topic string, isolation ...kgo.IsolationLevel) []*kgo.Record {
	t.Helper()
	committed := len(isolation) > 0 && isolation[0] == kgo.ReadCommitted()
	cl := c.newClient(t)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()

	cc := crosscheck.NewCluster(cl)
	ct, err := cc.Topic(ctx, topic)
	if err != nil {
		t.Fatalf("kfaketest: %v", err)
	}
	offsets, err := cc.Offsets(ctx, ct, committed)
	if err != nil {
		t.Fatalf("kfaketest: %v", err)
	}
	var out []*kgo.Record
	for _, p := range ct.Partitions() {
		rs, err := cc.Records(ctx, ct, p, offsets[p].LogStart, offsets[p].End, crosscheck.ReadOptions{Committed: committed})
		if err != nil {
			t.Fatalf("kfaketest: %v", err)
		}
		out = append(out, rs...)
	}
	return out
}
