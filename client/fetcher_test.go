package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/record"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// produce writes n records per partition to topic with kgo, in several
// batches, with the given codec, and fails the test on any produce error.
func produce(t *testing.T, c *kfake.Cluster, topic string, partitions int32, n int, codec kgo.CompressionCodec) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchCompression(codec),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(50))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		for p := int32(0); p < partitions; p++ {
			r := &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprintf("k-%d-%d", p, i)),
				Value: []byte(fmt.Sprintf("value %d of partition %d", i, p)), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Errorf("produce: %v", err)
				}
			})
		}
		if i%37 == 0 {
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// consumeKgo reads every record of topic with kgo: the reference.
func consumeKgo(t *testing.T, c *kfake.Cluster, topic string, want int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("kgo consumed %d of %d: %v", len(out), want, err)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, recordString(r.Partition, r.Offset, r.Key, r.Value)) })
	}
	sort.Strings(out)
	return out
}

func recordString(p int32, off int64, k, v []byte) string {
	return fmt.Sprintf("%d/%08d %s=%s", p, off, k, v)
}

// fetchAll fetches every partition of topic to its high watermark with a
// ktape Fetcher and decodes the records with package record.
func fetchAll(t *testing.T, f *Fetcher, topic string, partitions int32, want int) (recs []string, gaps []*GapError) {
	t.Helper()
	for p := int32(0); p < partitions; p++ {
		f.Assign(TopicPartition{topic, p}, 0)
	}
	var r record.Reader
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(recs) < want {
		fe, err := f.Poll(ctx)
		if err != nil {
			t.Fatalf("fetched %d of %d records: %v", len(recs), want, err)
		}
		for _, fp := range fe.Partitions {
			if fp.Err != nil {
				t.Fatalf("%s: %v", fp.TopicPartition, fp.Err)
			}
			if fp.Gap != nil {
				gaps = append(gaps, fp.Gap)
			}
			it := record.NewIter(fp.Records)
			for it.Next() {
				b := it.Batch()
				if err := b.Validate(); err != nil {
					t.Fatal(err)
				}
				ri, err := r.Records(b)
				if err != nil {
					t.Fatal(err)
				}
				for ri.Next() {
					rec := ri.Record()
					if rec.Offset >= fp.FetchOffset {
						recs = append(recs, recordString(fp.Partition, rec.Offset, rec.Key, rec.Value))
					}
				}
				if ri.Err() != nil {
					t.Fatal(ri.Err())
				}
			}
			if fp.NextOffset < fp.FetchOffset {
				t.Fatalf("offset went backwards: %d -> %d", fp.FetchOffset, fp.NextOffset)
			}
		}
		fe.Release()
	}
	sort.Strings(recs)
	return recs, gaps
}

func equalStrings(a, b []string) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d records, want %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Errorf("record %d: %q, want %q", i, a[i], b[i])
		}
	}
	return nil
}

func newFetchClient(t *testing.T, c *kfake.Cluster) *Client {
	t.Helper()
	cl, err := New(context.Background(), c.ListenAddrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestFetcherReadsWhatKgoReads(t *testing.T) {
	for _, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.ZstdCompression(), kgo.Lz4Compression()} {
		c := newCluster(t, kfake.NumBrokers(3), kfake.SeedTopics(4, "t"))
		produce(t, c, "t", 4, 300, codec)
		want := consumeKgo(t, c, "t", 4*300)
		f := NewFetcher(newFetchClient(t, c), FetchConfig{PartitionMaxBytes: 4 << 10, MaxBytes: 16 << 10, Budget: 64 << 10})
		got, gaps := fetchAll(t, f, "t", 4, len(want))
		f.Close()
		if err := equalStrings(got, want); err != nil {
			t.Fatal(err)
		}
		if len(gaps) != 0 {
			t.Fatalf("unexpected gaps %v", gaps)
		}
	}
}

// NOT_LEADER_OR_FOLLOWER for a partition, and a real leader move, are
// survived with nothing lost or repeated.
func TestFetcherSurvivesLeadershipChanges(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(3), kfake.SeedTopics(3, "t"))
	produce(t, c, "t", 3, 400, kgo.NoCompression())
	want := consumeKgo(t, c, "t", 3*400)

	var faults atomic.Int32
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if faults.Add(1) > 3 {
			c.DropControl()
			return nil, nil, false
		}
		r := req.(*kmsg.FetchRequest)
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = protocol.ErrNotLeaderOrFollower.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	cl := newFetchClient(t, c)
	f := NewFetcher(cl, FetchConfig{PartitionMaxBytes: 2 << 10, Backoff: Backoff{Base: time.Millisecond}})
	defer f.Close()
	// Move a leader while fetching.
	go func() {
		time.Sleep(30 * time.Millisecond)
		m := cl.Metadata().Topics["t"]
		if m != nil {
			c.MoveTopicPartition("t", 1, (m.Partitions[1].Leader+1)%3)
		}
	}()
	got, _ := fetchAll(t, f, "t", 3, len(want))
	if err := equalStrings(got, want); err != nil {
		t.Fatal(err)
	}
	if faults.Load() < 3 {
		t.Fatalf("only %d injected faults were hit", faults.Load())
	}
}

// Offsets deleted before they were fetched are skipped under
// OutOfRangeSkipToStart and reported as a gap; OutOfRangeFail stops.
func TestFetcherOutOfRange(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	produce(t, c, "t", 1, 100, kgo.NoCompression())
	cl := newFetchClient(t, c)
	kc, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	dr := kmsg.NewPtrDeleteRecordsRequest()
	drt := kmsg.NewDeleteRecordsRequestTopic()
	drt.Topic = "t"
	drp := kmsg.NewDeleteRecordsRequestTopicPartition()
	drp.Offset = 40
	drt.Partitions = append(drt.Partitions, drp)
	dr.Topics = append(dr.Topics, drt)
	if _, err := dr.RequestWith(context.Background(), kc); err != nil {
		t.Fatal(err)
	}

	f := NewFetcher(cl, FetchConfig{OutOfRange: OutOfRangeSkipToStart})
	got, gaps := fetchAll(t, f, "t", 1, 60)
	f.Close()
	if len(got) != 60 || len(gaps) != 1 || gaps[0].From != 0 || gaps[0].To != 40 {
		t.Fatalf("%d records, gaps %+v", len(got), gaps)
	}

	f = NewFetcher(cl, FetchConfig{})
	defer f.Close()
	f.Assign(TopicPartition{"t", 0}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fe, err := f.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fe.Partitions) != 1 || !errors.Is(fe.Partitions[0].Err, protocol.ErrOffsetOutOfRange) {
		t.Fatalf("got %+v", fe.Partitions)
	}
	fe.Release()
}

// The bytes held in unreleased fetches never exceed the budget.
func TestFetcherBudget(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(3), kfake.SeedTopics(6, "t"))
	produce(t, c, "t", 6, 200, kgo.NoCompression())
	const budget = 48 << 10
	f := NewFetcher(newFetchClient(t, c), FetchConfig{MaxBytes: 16 << 10, PartitionMaxBytes: 4 << 10, Budget: budget})
	defer f.Close()
	for p := int32(0); p < 6; p++ {
		f.Assign(TopicPartition{"t", p}, 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var held []*Fetch
	var heldBytes int64
	records := 0
	for records < 1200 {
		fe, err := f.Poll(ctx)
		if err != nil {
			t.Fatalf("after %d records: %v", records, err)
		}
		heldBytes += fe.charged
		held = append(held, fe)
		if heldBytes > budget {
			t.Fatalf("holding %d bytes of fetches, budget %d", heldBytes, budget)
		}
		for _, fp := range fe.Partitions {
			it := record.NewIter(fp.Records)
			for it.Next() {
				if it.Batch().BaseOffset() >= fp.FetchOffset {
					records += int(it.Batch().NumRecords())
				}
			}
		}
		// Keep as much as the budget allows while leaving room for the
		// next fetch: release the oldest beyond that.
		for len(held) > 0 && heldBytes+fe.charged > budget {
			held[0].Release()
			heldBytes -= held[0].charged
			held = held[1:]
		}
	}
	for _, fe := range held {
		fe.Release()
	}
}

// A full fetch response fits the buffer the budget is charged for.
// Responses are read into pooled buffers of the power of two above their
// size, envelope included; when MaxBytes was the whole budget, a full
// response took twice the budget while being charged once (with 1,000
// partitions behind ktape backup --memory 64MiB, every response was a
// 64 MiB buffer charged 32). kfake never fills a response to within the
// envelope of MaxBytes, so this checks the configuration the fetcher
// runs with, for budgets a user's --memory gives and odd ones.
func TestFetchMaxBytesFitBudget(t *testing.T) {
	for _, budget := range []int64{4 << 20, 32 << 20, 48 << 20, 50 << 20, 64 << 20, 100 << 20, 128 << 20, 1 << 30, 200 << 10, 100 << 10, 1} {
		c := FetchConfig{Budget: budget}.withDefaults()
		buf := int64(1) << class(int(c.MaxBytes)+fetchEnvelope)
		if c.MaxBytes < 1 || buf > budget && budget > 2*fetchEnvelope {
			t.Errorf("budget %d: MaxBytes %d, so a full response takes a buffer of %d", budget, c.MaxBytes, buf)
		}
	}
	// Budgets that do not constrain leave the consumer's default.
	if c := (FetchConfig{Budget: 256 << 20}).withDefaults(); c.MaxBytes != 50<<20 {
		t.Errorf("budget 256 MiB: MaxBytes %d, want the default 50 MiB", c.MaxBytes)
	}
}
