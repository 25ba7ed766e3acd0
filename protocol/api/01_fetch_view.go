package api

import "github.com/ktape/ktape/protocol"

// Typed zero-copy views of FetchResponse: thin wrappers over field handles
// resolved once, at init. Reading through them allocates nothing; every
// []byte they return borrows the response buffer and is valid until the
// Decoder decodes another message.

var fetchResp = struct {
	throttle, errorCode, sessionID, responses, nodeEndpoints protocol.Handle
	topic, topicID, partitions                               protocol.Handle
	partition, partErr, hwm, lso, logStart                   protocol.Handle
	currentLeader, aborted, preferred, records               protocol.Handle
	leaderID, leaderEpoch                                    protocol.Handle
	abortedPID, abortedFirst                                 protocol.Handle
	nodeID, host, port, rack                                 protocol.Handle
}{}

func init() {
	r := Fetch.Response
	f := &fetchResp
	f.throttle, f.errorCode, f.sessionID = r.Handle("ThrottleTimeMs"), r.Handle("ErrorCode"), r.Handle("SessionId")
	f.responses, f.nodeEndpoints = r.Handle("Responses"), r.Handle("NodeEndpoints")
	t := r.Child(f.responses)
	f.topic, f.topicID, f.partitions = t.Handle("Topic"), t.Handle("TopicId"), t.Handle("Partitions")
	p := t.Child(f.partitions)
	f.partition, f.partErr, f.hwm = p.Handle("PartitionIndex"), p.Handle("ErrorCode"), p.Handle("HighWatermark")
	f.lso, f.logStart = p.Handle("LastStableOffset"), p.Handle("LogStartOffset")
	f.currentLeader, f.aborted = p.Handle("CurrentLeader"), p.Handle("AbortedTransactions")
	f.preferred, f.records = p.Handle("PreferredReadReplica"), p.Handle("Records")
	cl := p.Child(f.currentLeader)
	f.leaderID, f.leaderEpoch = cl.Handle("LeaderId"), cl.Handle("LeaderEpoch")
	a := p.Child(f.aborted)
	f.abortedPID, f.abortedFirst = a.Handle("ProducerId"), a.Handle("FirstOffset")
	n := r.Child(f.nodeEndpoints)
	f.nodeID, f.host, f.port, f.rack = n.Handle("NodeId"), n.Handle("Host"), n.Handle("Port"), n.Handle("Rack")
}

// FetchResponseView is a zero-copy view of a FetchResponse body.
type FetchResponseView struct{ v protocol.View }

// DecodeFetchResponse validates a FetchResponse body of version v with d
// and returns a view of it, valid until d decodes another message.
func DecodeFetchResponse(d *protocol.Decoder, v int16, body []byte) (FetchResponseView, error) {
	view, err := d.Decode(Fetch.Response, v, body)
	return FetchResponseView{view}, err
}

// View is the generic view underneath.
func (r FetchResponseView) View() protocol.View { return r.v }

// ThrottleTimeMs is how long the broker throttled the request (v1+).
func (r FetchResponseView) ThrottleTimeMs() int32 { return r.v.Int32(fetchResp.throttle) }

// ErrorCode is the top-level error (fetch sessions, v7+).
func (r FetchResponseView) ErrorCode() int16 { return r.v.Int16(fetchResp.errorCode) }

// SessionID is the fetch session id (v7+).
func (r FetchResponseView) SessionID() int32 { return r.v.Int32(fetchResp.sessionID) }

// NumTopics is the number of topics in the response.
func (r FetchResponseView) NumTopics() int { return r.v.Array(fetchResp.responses).Len() }

// Topics returns the topics.
func (r FetchResponseView) Topics() FetchTopics { return FetchTopics{r.v.Array(fetchResp.responses)} }

// NodeEndpoints returns the brokers named as new leaders (v16+).
func (r FetchResponseView) NodeEndpoints() NodeEndpoints {
	return NodeEndpoints{r.v.Array(fetchResp.nodeEndpoints)}
}

// FetchTopics is the array of topics of a FetchResponse.
type FetchTopics struct{ a protocol.ArrayView }

// Len is the number of topics.
func (t FetchTopics) Len() int { return t.a.Len() }

// At returns topic i.
func (t FetchTopics) At(i int) FetchTopic { return FetchTopic{t.a.At(i)} }

// FetchTopic is one topic of a FetchResponse.
type FetchTopic struct{ v protocol.View }

// Name is the topic name (v0-12; empty from v13, which uses TopicID).
func (t FetchTopic) Name() []byte { return t.v.StringBytes(fetchResp.topic) }

// TopicID is the topic id (v13+; zero before).
func (t FetchTopic) TopicID() [16]byte { return t.v.UUID(fetchResp.topicID) }

// Partitions returns the topic's partitions.
func (t FetchTopic) Partitions() FetchPartitions {
	return FetchPartitions{t.v.Array(fetchResp.partitions)}
}

// FetchPartitions is the array of partitions of a topic.
type FetchPartitions struct{ a protocol.ArrayView }

// Len is the number of partitions.
func (p FetchPartitions) Len() int { return p.a.Len() }

// At returns partition i.
func (p FetchPartitions) At(i int) FetchPartition { return FetchPartition{p.a.At(i)} }

// FetchPartition is one partition of a FetchResponse.
type FetchPartition struct{ v protocol.View }

// Partition is the partition index.
func (p FetchPartition) Partition() int32 { return p.v.Int32(fetchResp.partition) }

// ErrorCode is the partition's error code.
func (p FetchPartition) ErrorCode() int16 { return p.v.Int16(fetchResp.partErr) }

// HighWatermark is the partition's high watermark.
func (p FetchPartition) HighWatermark() int64 { return p.v.Int64(fetchResp.hwm) }

// LastStableOffset is the last stable offset (v4+; -1 before).
func (p FetchPartition) LastStableOffset() int64 { return p.v.Int64(fetchResp.lso) }

// LogStartOffset is the log start offset (v5+; -1 before).
func (p FetchPartition) LogStartOffset() int64 { return p.v.Int64(fetchResp.logStart) }

// PreferredReadReplica is the replica to fetch from next (v11+; -1 none).
func (p FetchPartition) PreferredReadReplica() int32 { return p.v.Int32(fetchResp.preferred) }

// CurrentLeader is the leader the broker knows of, sent with
// NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH (v12+; -1, -1 if not sent).
func (p FetchPartition) CurrentLeader() (leaderID, leaderEpoch int32) {
	cl, _ := p.v.Struct(fetchResp.currentLeader)
	return cl.Int32(fetchResp.leaderID), cl.Int32(fetchResp.leaderEpoch)
}

// AbortedTransactions returns the aborted transactions overlapping the
// returned records (v4+, read_committed only; empty when null).
func (p FetchPartition) AbortedTransactions() AbortedTransactions {
	return AbortedTransactions{p.v.Array(fetchResp.aborted)}
}

// Records is the partition's record batches, as the broker sent them: not
// copied, not parsed. The last batch may be truncated.
func (p FetchPartition) Records() []byte { return p.v.Records(fetchResp.records) }

// AbortedTransactions is the array of aborted transactions of a partition.
type AbortedTransactions struct{ a protocol.ArrayView }

// Len is the number of aborted transactions.
func (a AbortedTransactions) Len() int { return a.a.Len() }

// IsNull reports whether the broker sent null (not read_committed).
func (a AbortedTransactions) IsNull() bool { return a.a.IsNull() }

// At returns the producer id and first offset of aborted transaction i.
func (a AbortedTransactions) At(i int) (producerID, firstOffset int64) {
	v := a.a.At(i)
	return v.Int64(fetchResp.abortedPID), v.Int64(fetchResp.abortedFirst)
}

// NodeEndpoints is an array of broker endpoints sent for leader discovery.
type NodeEndpoints struct{ a protocol.ArrayView }

// Len is the number of endpoints.
func (n NodeEndpoints) Len() int { return n.a.Len() }

// At returns endpoint i; host and rack borrow the response (rack is nil
// when null).
func (n NodeEndpoints) At(i int) (nodeID int32, host []byte, port int32, rack []byte) {
	v := n.a.At(i)
	return v.Int32(fetchResp.nodeID), v.StringBytes(fetchResp.host), v.Int32(fetchResp.port), v.StringBytes(fetchResp.rack)
}
