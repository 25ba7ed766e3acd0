package client_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/record"
	"github.com/twmb/franz-go/pkg/kgo"
)

func recs(prefix string, n int) []*kgo.Record {
	var out []*kgo.Record
	for i := 0; i < n; i++ {
		out = append(out, &kgo.Record{Key: []byte(fmt.Sprintf("%s-%d", prefix, i)), Value: []byte(prefix)})
	}
	return out
}

// A read_committed fetch stops at the last stable offset and lists the
// aborted transactions; dropping the batches of those transactions leaves
// exactly what franz-go's read_committed consumer returns.
func TestFetcherReadCommitted(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "t"))
	c.Produce(t, "t", 0, recs("plain", 5)...)
	c.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Commit}, "t", 0, recs("committed", 4)...)
	c.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Abort}, "t", 0, recs("aborted", 3)...)
	c.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Commit, Compression: kgo.ZstdCompression()}, "t", 0, recs("late", 2)...)
	var want []string
	for _, r := range c.ConsumeAll(t, "t", kgo.ReadCommitted()) {
		want = append(want, string(r.Key))
	}
	sort.Strings(want)

	ctx := context.Background()
	cl, err := client.New(ctx, c.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	f := client.NewFetcher(cl, client.FetchConfig{Isolation: client.ReadCommitted})
	defer f.Close()
	f.Assign(client.TopicPartition{Topic: "t", Partition: 0}, 0)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	var got []string
	var aborted []client.AbortedTransaction
	var r record.Reader
	var lso, next int64 = -1, 0
	for next < lso || lso < 0 {
		fe, err := f.Poll(pctx)
		if err != nil {
			t.Fatalf("after %d records: %v", len(got), err)
		}
		for _, fp := range fe.Partitions {
			if fp.Err != nil {
				t.Fatal(fp.Err)
			}
			lso, next = fp.LastStableOffset, fp.NextOffset
			aborted = append(aborted, fp.Aborted...)
			it := record.NewIter(fp.Records)
			for it.Next() {
				b := it.Batch()
				if b.IsControl() || isAborted(b, aborted) {
					continue
				}
				ri, err := r.Records(b)
				if err != nil {
					t.Fatal(err)
				}
				for ri.Next() {
					got = append(got, string(ri.Record().Key))
				}
			}
		}
		fe.Release()
	}
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read committed:\n got %v\nwant %v", got, want)
	}
	if len(aborted) != 1 {
		t.Fatalf("aborted transactions %+v, want one", aborted)
	}
}

// isAborted: a transactional batch of a producer with an aborted
// transaction starting at or before it (simplified: one transaction per
// producer in this test).
func isAborted(b record.Batch, aborted []client.AbortedTransaction) bool {
	if !b.IsTransactional() {
		return false
	}
	for _, a := range aborted {
		if a.ProducerID == b.ProducerID() && a.FirstOffset <= b.BaseOffset() {
			return true
		}
	}
	return false
}
