package kfaketest

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Log is a partition's log given byte for byte: what kfake cannot hold
// itself, since it stores what producers send and never compacts nor
// writes old formats. Data is record batches as a broker would return
// them: legacy message sets (magic 0 and 1) before v2 batches in a log
// whose format was upgraded, or batches with holes between and inside
// them in a compacted log.
type Log struct {
	Data []byte
	// LogStart and End are the partition's log start offset and high
	// watermark (also its last stable offset: no transaction is open).
	LogStart, End int64
}

// Serve has the cluster answer Fetch and ListOffsets requests for topic
// (which must exist, with one partition per log) from logs, as a broker
// holding those logs would: a fetch at offset o gets the entries from the
// one holding o, or the first after it, to the end. Requests naming other
// topics too are left to kfake. Everything else about the topic (metadata,
// configs) is kfake's.
func (c *Cluster) Serve(t testing.TB, topic string, logs []Log) {
	t.Helper()
	type entry struct {
		pos  int
		last int64
	}
	index := make([][]entry, len(logs))
	for i, l := range logs {
		for pos := 0; pos+17 <= len(l.Data); {
			size := int(binary.BigEndian.Uint32(l.Data[pos+8:]))
			last := int64(binary.BigEndian.Uint64(l.Data[pos:])) // a legacy entry's own offset is its last
			if l.Data[pos+16] >= 2 {
				last += int64(binary.BigEndian.Uint32(l.Data[pos+23:])) // last offset delta
			}
			index[i] = append(index[i], entry{pos, last})
			pos += 12 + size
		}
	}
	cl := c.Client(t)
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(context.Background(), cl)
	if err != nil || len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		t.Fatalf("kfaketest: metadata of %s: %v", topic, err)
	}
	id := mresp.Topics[0].TopicID
	const (
		offsetOutOfRange = 1
		unknownPartition = 3
	)
	k := c.kf
	k.ControlKey(int16(kmsg.Fetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		req := kr.(*kmsg.FetchRequest)
		for _, rt := range req.Topics {
			if rt.Topic != topic && rt.TopicID != id {
				return nil, nil, false
			}
		}
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				switch p := int(rp.Partition); {
				case p < 0 || p >= len(logs):
					sp.ErrorCode = unknownPartition
				case rp.FetchOffset < logs[p].LogStart || rp.FetchOffset > logs[p].End:
					sp.ErrorCode = offsetOutOfRange
				default:
					l := logs[p]
					sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = l.End, l.End, l.LogStart
					for _, e := range index[p] {
						if e.last >= rp.FetchOffset {
							sp.RecordBatches = l.Data[e.pos:]
							break
						}
					}
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	k.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		req := kr.(*kmsg.ListOffsetsRequest)
		for _, rt := range req.Topics {
			if rt.Topic != topic {
				return nil, nil, false
			}
		}
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.Timestamp, sp.LeaderEpoch = rp.Partition, -1, -1
				switch p := int(rp.Partition); {
				case p < 0 || p >= len(logs):
					sp.ErrorCode = unknownPartition
				case rp.Timestamp == -2: // earliest
					sp.Offset = logs[p].LogStart
				default: // latest; there is no time index to search
					sp.Offset = logs[p].End
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}
