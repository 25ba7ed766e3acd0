package api

import "github.com/ktape/ktape/protocol"

// Typed zero-copy view of ListOffsetsResponse. See 01_fetch_view.go.

var listOffsets = struct {
	throttle, topics, name, partitions, index, err, oldOffsets, timestamp, offset, leaderEpoch protocol.Handle
}{}

func init() {
	r := ListOffsets.Response
	l := &listOffsets
	l.throttle, l.topics = r.Handle("ThrottleTimeMs"), r.Handle("Topics")
	t := r.Child(l.topics)
	l.name, l.partitions = t.Handle("Name"), t.Handle("Partitions")
	p := t.Child(l.partitions)
	l.index, l.err, l.oldOffsets = p.Handle("PartitionIndex"), p.Handle("ErrorCode"), p.Handle("OldStyleOffsets")
	l.timestamp, l.offset, l.leaderEpoch = p.Handle("Timestamp"), p.Handle("Offset"), p.Handle("LeaderEpoch")
}

// ListOffsetsResponseView is a zero-copy view of a ListOffsetsResponse.
type ListOffsetsResponseView struct{ v protocol.View }

// DecodeListOffsetsResponse validates a ListOffsetsResponse body of version v.
func DecodeListOffsetsResponse(d *protocol.Decoder, v int16, body []byte) (ListOffsetsResponseView, error) {
	view, err := d.Decode(ListOffsets.Response, v, body)
	return ListOffsetsResponseView{view}, err
}

// ThrottleTimeMs is how long the broker throttled the request (v2+).
func (r ListOffsetsResponseView) ThrottleTimeMs() int32 { return r.v.Int32(listOffsets.throttle) }

// NumTopics is the number of topics.
func (r ListOffsetsResponseView) NumTopics() int { return r.v.Array(listOffsets.topics).Len() }

// Topic returns topic i.
func (r ListOffsetsResponseView) Topic(i int) ListOffsetsTopic {
	return ListOffsetsTopic{r.v.Array(listOffsets.topics).At(i)}
}

// ListOffsetsTopic is one topic of a ListOffsetsResponse.
type ListOffsetsTopic struct{ v protocol.View }

// Name is the topic name.
func (t ListOffsetsTopic) Name() []byte { return t.v.StringBytes(listOffsets.name) }

// NumPartitions is the number of partitions.
func (t ListOffsetsTopic) NumPartitions() int { return t.v.Array(listOffsets.partitions).Len() }

// Partition returns the result for partition i.
func (t ListOffsetsTopic) Partition(i int) ListOffsetsPartition {
	return ListOffsetsPartition{t.v.Array(listOffsets.partitions).At(i)}
}

// ListOffsetsPartition is the offset found for one partition.
type ListOffsetsPartition struct{ v protocol.View }

// Index is the partition index.
func (p ListOffsetsPartition) Index() int32 { return p.v.Int32(listOffsets.index) }

// ErrorCode is the partition's error code.
func (p ListOffsetsPartition) ErrorCode() int16 { return p.v.Int16(listOffsets.err) }

// Timestamp is the timestamp of the offset found, -1 if none (v1+).
func (p ListOffsetsPartition) Timestamp() int64 { return p.v.Int64(listOffsets.timestamp) }

// Offset is the offset found, -1 if none. In v0, where the broker returns a
// list of offsets instead, it is the first of them.
func (p ListOffsetsPartition) Offset() int64 {
	if p.v.Version() == 0 {
		if old := p.v.Array(listOffsets.oldOffsets); old.Len() > 0 {
			return old.Int64At(0)
		}
		return -1
	}
	return p.v.Int64(listOffsets.offset)
}

// LeaderEpoch is the leader epoch of the offset found, -1 if unknown (v4+).
func (p ListOffsetsPartition) LeaderEpoch() int32 { return p.v.Int32(listOffsets.leaderEpoch) }
