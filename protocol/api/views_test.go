package api

import (
	"bytes"
	"math/rand"
	"reflect"
	"testing"

	"github.com/ktape/ktape/protocol"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The typed views must read what kmsg reads, at every version, from random
// messages encoded by kmsg.

func randomKmsg[T any](rng *rand.Rand, v int16, m *T) []byte {
	fillKmsg(reflect.ValueOf(m).Elem(), rng, true)
	km := any(m).(kmsgMessage)
	km.SetVersion(v)
	b := km.AppendTo(nil)
	fresh := new(T)
	any(fresh).(kmsgMessage).SetVersion(v)
	if err := any(fresh).(kmsgMessage).ReadFrom(b); err != nil {
		panic(err)
	}
	*m = *fresh
	return b
}

func TestFetchResponseViewMatchesKmsg(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var d protocol.Decoder
	for v := Fetch.MinVersion; v <= Fetch.MaxVersion; v++ {
		for i := 0; i < 50; i++ {
			var m kmsg.FetchResponse
			b := randomKmsg(rng, v, &m)
			r, err := DecodeFetchResponse(&d, v, b)
			if err != nil {
				t.Fatalf("v%d: %v", v, err)
			}
			if r.ThrottleTimeMs() != m.ThrottleMillis || r.ErrorCode() != m.ErrorCode || r.SessionID() != m.SessionID || r.Topics().Len() != len(m.Topics) {
				t.Fatalf("v%d: top level differs", v)
			}
			for ti, kt := range m.Topics {
				tv := r.Topics().At(ti)
				if v <= 12 && string(tv.Name()) != kt.Topic || v >= 13 && tv.TopicID() != kt.TopicID || tv.Partitions().Len() != len(kt.Partitions) {
					t.Fatalf("v%d topic %d differs", v, ti)
				}
				for pi, kp := range kt.Partitions {
					p := tv.Partitions().At(pi)
					id, epoch := p.CurrentLeader()
					if p.Partition() != kp.Partition || p.ErrorCode() != kp.ErrorCode || p.HighWatermark() != kp.HighWatermark ||
						p.LastStableOffset() != kp.LastStableOffset || p.LogStartOffset() != kp.LogStartOffset ||
						p.PreferredReadReplica() != kp.PreferredReadReplica || !bytes.Equal(p.Records(), kp.RecordBatches) ||
						(v >= 12 && (id != kp.CurrentLeader.LeaderID || epoch != kp.CurrentLeader.LeaderEpoch)) ||
						p.AbortedTransactions().Len() != len(kp.AbortedTransactions) {
						t.Fatalf("v%d partition %d/%d differs", v, ti, pi)
					}
					for ai, ka := range kp.AbortedTransactions {
						if pid, first := p.AbortedTransactions().At(ai); pid != ka.ProducerID || first != ka.FirstOffset {
							t.Fatalf("v%d aborted txn differs", v)
						}
					}
				}
			}
		}
	}
}

func TestProduceViewsMatchKmsg(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	var d protocol.Decoder
	for v := Produce.MinVersion; v <= Produce.MaxVersion; v++ {
		for i := 0; i < 50; i++ {
			var q kmsg.ProduceRequest
			b := randomKmsg(rng, v, &q)
			r, err := DecodeProduceRequest(&d, v, b)
			if err != nil {
				t.Fatalf("request v%d: %v", v, err)
			}
			if r.Acks() != q.Acks || r.TimeoutMs() != q.TimeoutMillis || r.NumTopics() != len(q.Topics) {
				t.Fatalf("request v%d differs", v)
			}
			if v >= 3 && (q.TransactionID == nil) != (r.TransactionalID() == nil) {
				t.Fatalf("request v%d: transactional id nullness differs", v)
			}
			for ti, kt := range q.Topics {
				tv := r.Topic(ti)
				if v <= 12 && string(tv.Name()) != kt.Topic || v >= 13 && tv.TopicID() != kt.TopicID || tv.NumPartitions() != len(kt.Partitions) {
					t.Fatalf("request v%d topic differs", v)
				}
				for pi, kp := range kt.Partitions {
					if idx, recs := tv.Partition(pi); idx != kp.Partition || !bytes.Equal(recs, kp.Records) {
						t.Fatalf("request v%d partition differs", v)
					}
				}
			}

			var s kmsg.ProduceResponse
			b = randomKmsg(rng, v, &s)
			rr, err := DecodeProduceResponse(&d, v, b)
			if err != nil {
				t.Fatalf("response v%d: %v", v, err)
			}
			if rr.NumTopics() != len(s.Topics) || (v >= 1 && rr.ThrottleTimeMs() != s.ThrottleMillis) {
				t.Fatalf("response v%d differs", v)
			}
			for ti, kt := range s.Topics {
				tv := rr.Topic(ti)
				if v <= 12 && string(tv.Name()) != kt.Topic || tv.NumPartitions() != len(kt.Partitions) {
					t.Fatalf("response v%d topic differs", v)
				}
				for pi, kp := range kt.Partitions {
					p := tv.Partition(pi)
					if p.Index() != kp.Partition || p.ErrorCode() != kp.ErrorCode || p.BaseOffset() != kp.BaseOffset ||
						p.LogAppendTimeMs() != kp.LogAppendTime || p.LogStartOffset() != kp.LogStartOffset ||
						(v >= 8 && (kp.ErrorMessage == nil) != (p.ErrorMessage() == nil)) {
						t.Fatalf("response v%d partition differs", v)
					}
				}
			}
		}
	}
}

func TestMetadataAndListOffsetsViewsMatchKmsg(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	var d protocol.Decoder
	for v := Metadata.MinVersion; v <= Metadata.MaxVersion; v++ {
		for i := 0; i < 50; i++ {
			var m kmsg.MetadataResponse
			b := randomKmsg(rng, v, &m)
			r, err := DecodeMetadataResponse(&d, v, b)
			if err != nil {
				t.Fatalf("metadata v%d: %v", v, err)
			}
			if r.NumBrokers() != len(m.Brokers) || r.NumTopics() != len(m.Topics) || (v >= 1 && r.ControllerID() != m.ControllerID) {
				t.Fatalf("metadata v%d differs", v)
			}
			for bi, kb := range m.Brokers {
				id, host, port, rack := r.Broker(bi)
				if id != kb.NodeID || string(host) != kb.Host || port != kb.Port || (v >= 1 && (rack == nil) != (kb.Rack == nil)) {
					t.Fatalf("metadata v%d broker differs", v)
				}
			}
			for ti, kt := range m.Topics {
				tv := r.Topic(ti)
				if tv.ErrorCode() != kt.ErrorCode || tv.NumPartitions() != len(kt.Partitions) || (v >= 1 && tv.IsInternal() != kt.IsInternal) {
					t.Fatalf("metadata v%d topic differs", v)
				}
				for pi, kp := range kt.Partitions {
					p := tv.Partition(pi)
					if p.Index() != kp.Partition || p.Leader() != kp.Leader || p.ErrorCode() != kp.ErrorCode ||
						p.Replicas().Len() != len(kp.Replicas) || p.ISR().Len() != len(kp.ISR) || (v >= 7 && p.LeaderEpoch() != kp.LeaderEpoch) {
						t.Fatalf("metadata v%d partition differs", v)
					}
					for k, want := range kp.Replicas {
						if p.Replicas().At(k) != want {
							t.Fatalf("metadata v%d replica differs", v)
						}
					}
				}
			}
		}
	}
	for v := ListOffsets.MinVersion; v <= ListOffsets.MaxVersion; v++ {
		for i := 0; i < 50; i++ {
			var m kmsg.ListOffsetsResponse
			b := randomKmsg(rng, v, &m)
			r, err := DecodeListOffsetsResponse(&d, v, b)
			if err != nil {
				t.Fatalf("list offsets v%d: %v", v, err)
			}
			if r.NumTopics() != len(m.Topics) {
				t.Fatalf("list offsets v%d differs", v)
			}
			for ti, kt := range m.Topics {
				tv := r.Topic(ti)
				for pi, kp := range kt.Partitions {
					p := tv.Partition(pi)
					want := kp.Offset
					if v == 0 {
						want = -1
						if len(kp.OldStyleOffsets) > 0 {
							want = kp.OldStyleOffsets[0]
						}
					}
					if string(tv.Name()) != kt.Topic || p.Index() != kp.Partition || p.ErrorCode() != kp.ErrorCode || p.Offset() != want ||
						(v >= 1 && p.Timestamp() != kp.Timestamp) || (v >= 4 && p.LeaderEpoch() != kp.LeaderEpoch) {
						t.Fatalf("list offsets v%d partition differs", v)
					}
				}
			}
		}
	}
}
