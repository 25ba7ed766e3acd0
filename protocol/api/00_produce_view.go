package api

import "github.com/ktape/ktape/protocol"

// Typed zero-copy views of ProduceRequest (what a proxy or a test broker
// reads) and ProduceResponse (what a producer reads). See 01_fetch_view.go
// for the conventions.

var produce = struct {
	acks, timeout, txnID, topicData, name, topicID, partitionData, index, records protocol.Handle

	responses, rName, rTopicID, partResps, rIndex, rErr, baseOffset, logAppendTime, logStart, errMsg, throttle protocol.Handle
}{}

func init() {
	q := Produce.Request
	p := &produce
	p.acks, p.timeout, p.txnID, p.topicData = q.Handle("Acks"), q.Handle("TimeoutMs"), q.Handle("TransactionalId"), q.Handle("TopicData")
	t := q.Child(p.topicData)
	p.name, p.topicID, p.partitionData = t.Handle("Name"), t.Handle("TopicId"), t.Handle("PartitionData")
	pd := t.Child(p.partitionData)
	p.index, p.records = pd.Handle("Index"), pd.Handle("Records")

	r := Produce.Response
	p.responses, p.throttle = r.Handle("Responses"), r.Handle("ThrottleTimeMs")
	rt := r.Child(p.responses)
	p.rName, p.rTopicID, p.partResps = rt.Handle("Name"), rt.Handle("TopicId"), rt.Handle("PartitionResponses")
	pr := rt.Child(p.partResps)
	p.rIndex, p.rErr, p.baseOffset = pr.Handle("Index"), pr.Handle("ErrorCode"), pr.Handle("BaseOffset")
	p.logAppendTime, p.logStart, p.errMsg = pr.Handle("LogAppendTimeMs"), pr.Handle("LogStartOffset"), pr.Handle("ErrorMessage")
}

// ProduceRequestView is a zero-copy view of a ProduceRequest body.
type ProduceRequestView struct{ v protocol.View }

// DecodeProduceRequest validates a ProduceRequest body of version v.
func DecodeProduceRequest(d *protocol.Decoder, v int16, body []byte) (ProduceRequestView, error) {
	view, err := d.Decode(Produce.Request, v, body)
	return ProduceRequestView{view}, err
}

// Acks is 0, 1 or -1 (all in-sync replicas).
func (r ProduceRequestView) Acks() int16 { return r.v.Int16(produce.acks) }

// TimeoutMs is how long the broker may wait for acknowledgements.
func (r ProduceRequestView) TimeoutMs() int32 { return r.v.Int32(produce.timeout) }

// TransactionalID is the transactional id, nil when null (v3+).
func (r ProduceRequestView) TransactionalID() []byte { return r.v.StringBytes(produce.txnID) }

// NumTopics is the number of topics.
func (r ProduceRequestView) NumTopics() int { return r.v.Array(produce.topicData).Len() }

// Topic returns topic i: its name (v0-12), id (v13+) and partition count.
func (r ProduceRequestView) Topic(i int) ProduceTopic {
	return ProduceTopic{r.v.Array(produce.topicData).At(i)}
}

// ProduceTopic is one topic of a ProduceRequest.
type ProduceTopic struct{ v protocol.View }

// Name is the topic name (v0-12).
func (t ProduceTopic) Name() []byte { return t.v.StringBytes(produce.name) }

// TopicID is the topic id (v13+).
func (t ProduceTopic) TopicID() [16]byte { return t.v.UUID(produce.topicID) }

// NumPartitions is the number of partitions.
func (t ProduceTopic) NumPartitions() int { return t.v.Array(produce.partitionData).Len() }

// Partition returns partition i's index and record batches (borrowed).
func (t ProduceTopic) Partition(i int) (index int32, records []byte) {
	p := t.v.Array(produce.partitionData).At(i)
	return p.Int32(produce.index), p.Records(produce.records)
}

// ProduceResponseView is a zero-copy view of a ProduceResponse body.
type ProduceResponseView struct{ v protocol.View }

// DecodeProduceResponse validates a ProduceResponse body of version v.
func DecodeProduceResponse(d *protocol.Decoder, v int16, body []byte) (ProduceResponseView, error) {
	view, err := d.Decode(Produce.Response, v, body)
	return ProduceResponseView{view}, err
}

// ThrottleTimeMs is how long the broker throttled the request (v1+).
func (r ProduceResponseView) ThrottleTimeMs() int32 { return r.v.Int32(produce.throttle) }

// NumTopics is the number of topics.
func (r ProduceResponseView) NumTopics() int { return r.v.Array(produce.responses).Len() }

// Topic returns topic i of the response.
func (r ProduceResponseView) Topic(i int) ProduceTopicResponse {
	return ProduceTopicResponse{r.v.Array(produce.responses).At(i)}
}

// ProduceTopicResponse is one topic of a ProduceResponse.
type ProduceTopicResponse struct{ v protocol.View }

// Name is the topic name (v0-12).
func (t ProduceTopicResponse) Name() []byte { return t.v.StringBytes(produce.rName) }

// TopicID is the topic id (v13+).
func (t ProduceTopicResponse) TopicID() [16]byte { return t.v.UUID(produce.rTopicID) }

// NumPartitions is the number of partitions.
func (t ProduceTopicResponse) NumPartitions() int { return t.v.Array(produce.partResps).Len() }

// Partition returns partition i's result.
func (t ProduceTopicResponse) Partition(i int) ProducePartitionResponse {
	return ProducePartitionResponse{t.v.Array(produce.partResps).At(i)}
}

// ProducePartitionResponse is the result of producing to one partition.
type ProducePartitionResponse struct{ v protocol.View }

// Index is the partition index.
func (p ProducePartitionResponse) Index() int32 { return p.v.Int32(produce.rIndex) }

// ErrorCode is the partition's error code.
func (p ProducePartitionResponse) ErrorCode() int16 { return p.v.Int16(produce.rErr) }

// BaseOffset is the offset assigned to the first record.
func (p ProducePartitionResponse) BaseOffset() int64 { return p.v.Int64(produce.baseOffset) }

// LogAppendTimeMs is the broker's append time with LogAppendTime topics, else -1 (v2+).
func (p ProducePartitionResponse) LogAppendTimeMs() int64 { return p.v.Int64(produce.logAppendTime) }

// LogStartOffset is the partition's log start offset (v5+).
func (p ProducePartitionResponse) LogStartOffset() int64 { return p.v.Int64(produce.logStart) }

// ErrorMessage is the broker's message, nil when null (v8+).
func (p ProducePartitionResponse) ErrorMessage() []byte { return p.v.StringBytes(produce.errMsg) }
