package record

import (
	"math/rand"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kgoRecords decodes a record set with franz-go's own fetch processing
// (CRC check, decompression, record decoding), as its consumer does.
func kgoRecords(t *testing.T, set []byte, hwm int64) []*kgo.Record {
	t.Helper()
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.HighWatermark, rp.LastStableOffset, rp.RecordBatches = hwm, hwm, set
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		KeepControlRecords: true, Topic: "t", IsolationLevel: kgo.ReadUncommitted(),
	}, &rp, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		t.Fatalf("franz-go: %v", fp.Err)
	}
	return fp.Records
}

func compareKgo(t *testing.T, got []*kgo.Record, base int64, want []testRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("franz-go read %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		w := want[i]
		if r.Offset != base+int64(i) || r.Timestamp.UnixMilli() != w.ts || !sameBytes(r.Key, w.key) || !sameBytes(r.Value, w.value) || len(r.Headers) != len(w.headers) {
			t.Fatalf("record %d: franz-go read offset %d ts %d key %q value %q, want %+v", i, r.Offset, r.Timestamp.UnixMilli(), r.Key, r.Value, w)
		}
		for j, h := range r.Headers {
			if h.Key != string(w.headers[j].Key) || !sameBytes(h.Value, w.headers[j].Value) {
				t.Fatalf("record %d header %d: %q=%q", i, j, h.Key, h.Value)
			}
		}
	}
}

// Batches built by ktape, in every codec, are read by franz-go with
// identical records; after in-place header rewrites they still pass its
// CRC check and carry the new header.
func TestBuiltBatchesReadByFranzGo(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	for _, c := range codecs {
		recs := testRecords(rng, 200)
		h := NoProducer
		h.BaseOffset, h.Codec = 10, c
		batch := buildBatch(t, h, recs)
		compareKgo(t, kgoRecords(t, batch, 1000), 10, recs)

		batch.SetBaseOffset(5000)
		batch.SetPartitionLeaderEpoch(9)
		batch.SetProducer(ProducerState{ProducerID: 4242, ProducerEpoch: 7, BaseSequence: 100})
		got := kgoRecords(t, batch, 10000)
		compareKgo(t, got, 5000, recs)
		if got[0].ProducerID != 4242 || got[0].ProducerEpoch != 7 || got[0].LeaderEpoch != 9 {
			t.Fatalf("%s: franz-go sees producer %d/%d epoch %d", c, got[0].ProducerID, got[0].ProducerEpoch, got[0].LeaderEpoch)
		}
	}
}

// The check above would notice a bad CRC: franz-go rejects one.
func TestFranzGoChecksCRC(t *testing.T) {
	batch := buildBatch(t, NoProducer, testRecords(rand.New(rand.NewSource(9)), 3))
	batch[len(batch)-1] ^= 0xff
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.HighWatermark, rp.RecordBatches = 100, batch
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: "t", IsolationLevel: kgo.ReadUncommitted()}, &rp, kgo.DefaultDecompressor(), nil)
	if fp.Err == nil && len(fp.Records) > 0 {
		t.Fatal("franz-go accepted a batch with a bad CRC")
	}
}
