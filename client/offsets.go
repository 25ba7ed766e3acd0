package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
)

// Special timestamps for ListOffsets.
const (
	Latest       int64 = -1 // the high watermark (or last stable offset, read_committed)
	Earliest     int64 = -2 // the log start offset
	MaxTimestamp int64 = -3 // the offset of the record with the largest timestamp (v7+)
)

// OffsetResult is ListOffsets' answer for one partition.
type OffsetResult struct {
	Offset      int64 // -1 when no record is at or after the timestamp
	Timestamp   int64
	LeaderEpoch int32
	Err         error
}

// ListOffsets asks each partition's leader for the offset at a timestamp
// (or Latest, Earliest, MaxTimestamp), one request per leader, all leaders
// at once. Partitions whose leadership moved are retried after a metadata
// refresh; other errors are reported per partition.
func (c *Client) ListOffsets(ctx context.Context, iso Isolation, ts map[TopicPartition]int64) (map[TopicPartition]OffsetResult, error) {
	out := make(map[TopicPartition]OffsetResult, len(ts))
	todo := make(map[TopicPartition]int64, len(ts))
	for tp, t := range ts {
		todo[tp] = t
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		// One metadata refresh per round, for every topic still to do
		// that is unknown or was answered with a retriable error; never
		// one per partition.
		var names []string
		seen := map[string]bool{}
		m := c.Metadata()
		for tp := range todo {
			if _, err := m.leader(tp.Topic, tp.Partition); (attempt > 0 || err != nil) && !seen[tp.Topic] {
				seen[tp.Topic] = true
				names = append(names, tp.Topic)
			}
		}
		if attempt > 0 {
			if err := c.backoff.Sleep(ctx, attempt-1); err != nil {
				return out, err
			}
		}
		if len(names) > 0 {
			var err error
			if m, err = c.RefreshMetadata(ctx, names); err != nil {
				return out, err
			}
		}
		byLeader := map[int32]map[TopicPartition]int64{}
		for tp, t := range todo {
			l, err := m.leader(tp.Topic, tp.Partition)
			if err != nil {
				if attempt >= 5 || !IsRetriable(err) {
					out[tp] = OffsetResult{Offset: -1, Err: err}
					delete(todo, tp)
				}
				continue
			}
			if byLeader[l.Leader] == nil {
				byLeader[l.Leader] = map[TopicPartition]int64{}
			}
			byLeader[l.Leader][tp] = t
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for leader, parts := range byLeader {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := c.listOffsetsFrom(ctx, leader, iso, parts)
				mu.Lock()
				defer mu.Unlock()
				for tp := range parts {
					r, ok := res[tp]
					switch {
					case err != nil && (!IsRetriable(err) || attempt >= 5):
						out[tp] = OffsetResult{Offset: -1, Err: err}
						delete(todo, tp)
					case err != nil:
					case !ok:
						out[tp] = OffsetResult{Offset: -1, Err: fmt.Errorf("client: %s missing from the ListOffsets response", tp)}
						delete(todo, tp)
					case r.Err != nil && protocol.IsRetriable(r.Err) && attempt < 5:
					default:
						out[tp] = r
						delete(todo, tp)
					}
				}
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	return out, nil
}

func (c *Client) listOffsetsFrom(ctx context.Context, leader int32, iso Isolation, parts map[TopicPartition]int64) (map[TopicPartition]OffsetResult, error) {
	conn, err := c.BrokerConn(ctx, leader)
	if err != nil {
		return nil, err
	}
	return listOffsetsOn(ctx, conn, iso, parts)
}

func listOffsetsOn(ctx context.Context, conn *Conn, iso Isolation, parts map[TopicPartition]int64) (map[TopicPartition]OffsetResult, error) {
	v, err := conn.Version(api.ListOffsets)
	if err != nil {
		return nil, err
	}
	s := api.ListOffsets.Request
	req := protocol.NewRecord(s).SetName("ReplicaId", int32(-1)).SetName("IsolationLevel", int8(iso))
	topics := map[string]*protocol.Record{}
	for tp, t := range parts {
		if t == MaxTimestamp && v < 7 {
			return nil, fmt.Errorf("client: broker %s: ListOffsets v%d cannot ask for the max timestamp", conn.Addr(), v)
		}
		tr := topics[tp.Topic]
		if tr == nil {
			tr = req.Append(s.Handle("Topics")).SetName("Name", tp.Topic)
			topics[tp.Topic] = tr
		}
		tr.Append(tr.Schema().Handle("Partitions")).
			SetName("PartitionIndex", tp.Partition).
			SetName("Timestamp", t)
	}
	resp, err := conn.Do(ctx, req, v, 0)
	if err != nil {
		return nil, err
	}
	defer resp.Release()
	var d protocol.Decoder
	r, err := api.DecodeListOffsetsResponse(&d, v, resp.Body)
	if err != nil {
		return nil, &ConnError{Addr: conn.Addr(), Err: err}
	}
	out := map[TopicPartition]OffsetResult{}
	for i := 0; i < r.NumTopics(); i++ {
		t := r.Topic(i)
		name := string(t.Name())
		for j := 0; j < t.NumPartitions(); j++ {
			p := t.Partition(j)
			out[TopicPartition{name, p.Index()}] = OffsetResult{Offset: p.Offset(), Timestamp: p.Timestamp(),
				LeaderEpoch: p.LeaderEpoch(), Err: protocol.ErrorForCode(p.ErrorCode())}
		}
	}
	return out, nil
}

// logBounds returns a partition's log start and end offsets from its
// leader's connection.
func (c *Client) logBounds(ctx context.Context, conn *Conn, tp TopicPartition) (start, end int64, err error) {
	res, err := listOffsetsOn(ctx, conn, ReadUncommitted, map[TopicPartition]int64{tp: Earliest})
	if err != nil {
		return 0, 0, err
	}
	if r := res[tp]; r.Err != nil {
		return 0, 0, r.Err
	}
	start = res[tp].Offset
	res, err = listOffsetsOn(ctx, conn, ReadUncommitted, map[TopicPartition]int64{tp: Latest})
	if err != nil {
		return 0, 0, err
	}
	if r := res[tp]; r.Err != nil {
		return 0, 0, r.Err
	}
	if start < 0 {
		return 0, 0, errors.New("no log start offset")
	}
	return start, res[tp].Offset, nil
}
