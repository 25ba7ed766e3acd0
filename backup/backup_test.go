package backup

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func records(prefix string, n int) []*kgo.Record {
	var out []*kgo.Record
	for i := 0; i < n; i++ {
		r := &kgo.Record{Key: []byte(fmt.Sprintf("%s-%d", prefix, i)), Value: []byte(fmt.Sprintf("value %s %d", prefix, i))}
		if i%3 == 0 {
			r.Value = nil
		}
		if i%2 == 0 {
			r.Headers = []kgo.RecordHeader{{Key: "h", Value: []byte(prefix)}}
		}
		out = append(out, r)
	}
	return out
}

// A snapshot backup of data written by franz-go in every codec, with a
// committed and an aborted transaction, a DeleteRecords gap and an empty
// partition: verify --deep is clean, and franz-go's decoder reads from
// the repository's segments exactly the records its consumer reads from
// the broker (markers and aborted data included).
func TestSnapshotReadBackThroughFranzGo(t *testing.T) {
	ctx := context.Background()
	c := kfaketest.Start(t, kfaketest.Brokers(2), kfaketest.Topics(4, "orders"), kfaketest.Topics(1, "other", "__internal"))
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	for i, codec := range codecs {
		c.ProduceWith(t, kfaketest.ProduceOptions{Compression: codec}, "orders", int32(i%3), records(fmt.Sprint("c", i), 20)...)
	}
	c.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Commit}, "orders", 1, records("committed", 5)...)
	c.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Abort}, "orders", 1, records("aborted", 5)...)
	c.Produce(t, "other", 0, records("other", 30)...)
	c.Produce(t, "__internal", 0, records("internal", 3)...)

	cl, err := client.New(ctx, c.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// A gap: the first 10 records of other/0 deleted.
	if res := cl.DeleteRecords(ctx, map[client.TopicPartition]int64{{Topic: "other", Partition: 0}: 10}); res[client.TopicPartition{Topic: "other", Partition: 0}].Err != nil {
		t.Fatal(res)
	}

	st, err := storage.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, st, true)
	if err != nil {
		t.Fatal(err)
	}
	m, stats, err := Run(ctx, cl, r, Options{SegmentBytes: 2048, Version: "test", Bootstrap: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Topics) != 2 || m.Topics[0].Name != "orders" || m.Topics[1].Name != "other" {
		t.Fatalf("topics %+v: __internal must be left out unless named", m.Topics)
	}
	if stats.Segments < 4 || stats.Partitions != 5 {
		t.Fatalf("stats %+v", stats)
	}
	if errs := r.Verify(ctx, m, true); len(errs) > 0 {
		t.Fatalf("verify --deep: %v", errs)
	}
	if p := m.Topics[0].Partitions[3]; p.From != p.To || len(p.Segments) != 0 {
		t.Fatalf("empty partition: %+v", p)
	}
	if p := m.Topics[1].Partitions[0]; p.From != 10 || p.LogStart != 10 {
		t.Fatalf("other/0 after DeleteRecords: %+v", p)
	}

	checkAgainstBroker(t, c, st, m)
}

// checkAgainstBroker checks every partition of m: the repository's
// batches, decoded by franz-go, equal what franz-go's consumer reads from
// the broker in [From, To) (markers and aborted data included).
func checkAgainstBroker(t *testing.T, c *kfaketest.Cluster, st *storage.Store, m *repo.Manifest) {
	t.Helper()
	ctx := context.Background()
	broker := map[string][]string{}
	for _, topic := range m.Topics {
		for _, rec := range c.ConsumeAll(t, topic.Name, kgo.ReadUncommitted()) {
			k := fmt.Sprintf("%s/%d", rec.Topic, rec.Partition)
			if p := topic.Partition(rec.Partition); rec.Offset >= p.From && rec.Offset < p.To {
				broker[k] = append(broker[k], fmt.Sprintf("%d %q %q %v", rec.Offset, rec.Key, rec.Value, rec.Headers))
			}
		}
	}
	d := &record.Decompressor{}
	for _, topic := range m.Topics {
		for _, p := range topic.Partitions {
			var set []byte
			for _, ref := range p.Segments {
				stored, err := st.Get(ctx, ref.Key)
				if err != nil {
					t.Fatal(err)
				}
				idx, err := st.Get(ctx, repo.IndexKey(ref.Key))
				if err != nil {
					t.Fatal(err)
				}
				seg, err := repo.ParseIndex(idx)
				if err != nil {
					t.Fatal(err)
				}
				if err := seg.Batches(stored, d, func(_ repo.IndexEntry, b record.Batch) error {
					set = append(set, b...)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.HighWatermark, rp.LastStableOffset, rp.RecordBatches = p.To, p.To, set
			fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: topic.Name, Partition: p.Partition, IsolationLevel: kgo.ReadUncommitted()},
				&rp, kgo.DefaultDecompressor(), nil)
			if fp.Err != nil {
				t.Fatal(fp.Err)
			}
			var got []string
			seen := map[int64]bool{}
			for _, rec := range fp.Records {
				if seen[rec.Offset] {
					t.Fatalf("%s/%d: offset %d twice in the repository", topic.Name, p.Partition, rec.Offset)
				}
				seen[rec.Offset] = true
				if rec.Offset >= p.From {
					got = append(got, fmt.Sprintf("%d %q %q %v", rec.Offset, rec.Key, rec.Value, rec.Headers))
				}
			}
			k := fmt.Sprintf("%s/%d", topic.Name, p.Partition)
			if fmt.Sprint(got) != fmt.Sprint(broker[k]) {
				t.Fatalf("%s: the repository holds %d records, the broker %d in [%d, %d), or they differ", k, len(got), len(broker[k]), p.From, p.To)
			}
		}
	}
}

// Topic selection: regular expressions match whole names, excludes win,
// internal topics need their exact name.
func TestSelectTopics(t *testing.T) {
	md := &client.Metadata{Topics: map[string]*client.TopicMetadata{
		"orders": {}, "orders-dlq": {}, "payments": {}, "__consumer_offsets": {}, "__internal": {},
	}}
	for _, tc := range []struct {
		topics, exclude []string
		want            string
	}{
		{nil, nil, "[orders orders-dlq payments]"},
		{[]string{"orders"}, nil, "[orders]"},
		{[]string{"orders.*"}, []string{".*-dlq"}, "[orders]"},
		{[]string{".*"}, nil, "[orders orders-dlq payments]"},
		{[]string{"__internal"}, nil, "[__internal]"},
	} {
		var o Options
		for _, s := range tc.topics {
			o.Topics = append(o.Topics, regexp.MustCompile(s))
		}
		for _, s := range tc.exclude {
			o.Exclude = append(o.Exclude, regexp.MustCompile(s))
		}
		if got := fmt.Sprint(selectTopics(md, o)); got != tc.want {
			t.Errorf("topics %v exclude %v: %s, want %s", tc.topics, tc.exclude, got, tc.want)
		}
	}
}
