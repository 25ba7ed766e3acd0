package crosscheck

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Offsets are a partition's log start offset and end offset (the high
// watermark, or the last stable offset when read committed), as the
// cluster reports them.
type Offsets struct {
	LogStart, End int64
}

// Topic is what Cluster needs to fetch a topic's partitions: its id and
// each partition's leader.
type Topic struct {
	Name    string
	ID      [16]byte
	Leaders map[int32]int32 // partition → leader broker id
}

// Partitions returns the topic's partition numbers, sorted.
func (t *Topic) Partitions() []int32 { return slices.Sorted(maps.Keys(t.Leaders)) }

// Cluster reads a cluster's partitions with franz-go: kmsg requests sent
// through a kgo client, responses decoded by kgo.ProcessFetchPartition,
// the decoder kgo's consumer uses. Requests go straight to each
// partition's leader, so the client needs no consumer configuration.
type Cluster struct {
	cl *kgo.Client
}

// NewCluster reads through cl, which the caller keeps and closes.
func NewCluster(cl *kgo.Client) *Cluster { return &Cluster{cl: cl} }

// Topic returns a topic's id and partition leaders from fresh metadata.
func (c *Cluster) Topic(ctx context.Context, name string) (*Topic, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(name)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return nil, fmt.Errorf("crosscheck: metadata for %s: %w", name, err)
	}
	if len(resp.Topics) != 1 {
		return nil, fmt.Errorf("crosscheck: metadata for %s: %d topics in the response", name, len(resp.Topics))
	}
	mt := resp.Topics[0]
	if err := kerr.ErrorForCode(mt.ErrorCode); err != nil {
		return nil, fmt.Errorf("crosscheck: metadata for %s: %w", name, err)
	}
	t := &Topic{Name: name, ID: mt.TopicID, Leaders: make(map[int32]int32, len(mt.Partitions))}
	for _, p := range mt.Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			return nil, fmt.Errorf("crosscheck: metadata for %s/%d: %w", name, p.Partition, err)
		}
		t.Leaders[p.Partition] = p.Leader
	}
	return t, nil
}

// Offsets returns every partition's log start and end offsets. With
// committed, the end is the last stable offset, else the high watermark.
func (c *Cluster) Offsets(ctx context.Context, t *Topic, committed bool) (map[int32]Offsets, error) {
	level := isolationLevel(committed)
	start, err := c.listOffsets(ctx, t, -2, level)
	if err != nil {
		return nil, err
	}
	end, err := c.listOffsets(ctx, t, -1, level)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]Offsets, len(start))
	for p, s := range start {
		out[p] = Offsets{LogStart: s, End: end[p]}
	}
	return out, nil
}

// listOffsets returns each partition's offset for timestamp ts (-2 log
// start, -1 end).
func (c *Cluster) listOffsets(ctx context.Context, t *Topic, ts int64, level int8) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = level
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = t.Name
	for _, p := range t.Partitions() {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = ts
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, c.cl) // kgo sends each partition to its leader
	if err != nil {
		return nil, fmt.Errorf("crosscheck: list offsets (%d) for %s: %w", ts, t.Name, err)
	}
	got := make(map[int32]int64, len(t.Leaders))
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return nil, fmt.Errorf("crosscheck: list offsets (%d) for %s/%d: %w", ts, t.Name, rp.Partition, err)
			}
			got[rp.Partition] = rp.Offset
		}
	}
	if len(got) != len(t.Leaders) {
		return nil, fmt.Errorf("crosscheck: list offsets (%d) for %s: %d of %d partitions answered", ts, t.Name, len(got), len(t.Leaders))
	}
	return got, nil
}

// ReadOptions say what Records returns.
type ReadOptions struct {
	// Committed reads as a read_committed consumer: aborted records are
	// left out. The default reads as read_uncommitted.
	Committed bool
	// Control keeps control records (transaction markers), which kgo's
	// consumer otherwise drops.
	Control bool
}

// Records fetches [from, to) of one partition from its leader and returns
// its records in offset order, decoded by kgo (each batch's CRC checked,
// decompressed). A record at or past to that arrives in the last response
// is left out. It fails if the partition does not reach to.
func (c *Cluster) Records(ctx context.Context, t *Topic, partition int32, from, to int64, o ReadOptions) ([]*kgo.Record, error) {
	leader, ok := t.Leaders[partition]
	if !ok {
		return nil, fmt.Errorf("crosscheck: %s/%d: no such partition", t.Name, partition)
	}
	level := isolationLevel(o.Committed)
	iso := kgo.ReadUncommitted()
	if o.Committed {
		iso = kgo.ReadCommitted()
	}
	var out []*kgo.Record
	for off := from; off < to; {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis = 500
		req.MinBytes = 1
		req.MaxBytes = 64 << 20
		req.IsolationLevel = level
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = t.Name, t.ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = partition
		rp.FetchOffset = off
		rp.PartitionMaxBytes = 32 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)

		resp, err := req.RequestWith(ctx, c.cl.Broker(int(leader)))
		if err != nil {
			return nil, fmt.Errorf("crosscheck: fetch %s/%d at %d: %w", t.Name, partition, off, err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return nil, fmt.Errorf("crosscheck: fetch %s/%d at %d: %w", t.Name, partition, off, err)
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
			return nil, fmt.Errorf("crosscheck: fetch %s/%d at %d: partition missing from the response", t.Name, partition, off)
		}
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Topic:              t.Name,
			Partition:          partition,
			Offset:             off,
			IsolationLevel:     iso,
			KeepControlRecords: o.Control,
		}, got, kgo.DefaultDecompressor(), nil)
		if fp.Err != nil {
			return nil, fmt.Errorf("crosscheck: fetch %s/%d at %d: %w", t.Name, partition, off, fp.Err)
		}
		if next <= off {
			return nil, fmt.Errorf("crosscheck: fetch %s/%d at %d: no progress toward end offset %d (high watermark %d, last stable %d)",
				t.Name, partition, off, to, got.HighWatermark, got.LastStableOffset)
		}
		for _, r := range fp.Records {
			if r.Offset < to {
				out = append(out, r)
			}
		}
		off = next
	}
	return out, nil
}

func isolationLevel(committed bool) int8 {
	if committed {
		return 1
	}
	return 0
}
