// Package repotest checks backups in tests against the cluster they came
// from, reading the repository with franz-go's decoder, so that what ktape
// stored is judged by an independent implementation.
package repotest

import (
	"context"
	"fmt"
	"testing"

	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CheckAgainstBroker checks every partition of m: the repository's
// batches, decoded by franz-go, equal what franz-go's consumer reads from
// the broker in [max(From, LogStart), To) (markers and aborted data
// included); what lies below the log start the broker no longer has, and
// verify --deep accounts for it.
func CheckAgainstBroker(t testing.TB, c *kfaketest.Cluster, st *storage.Store, m *repo.Manifest) {
	t.Helper()
	ctx := context.Background()
	broker := map[string][]string{}
	for _, topic := range m.Topics {
		for _, rec := range c.ConsumeAll(t, topic.Name, kgo.ReadUncommitted()) {
			k := fmt.Sprintf("%s/%d", rec.Topic, rec.Partition)
			if p := topic.Partition(rec.Partition); rec.Offset >= max(p.From, p.LogStart) && rec.Offset < p.To {
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
				if rec.Offset >= max(p.From, p.LogStart) {
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
