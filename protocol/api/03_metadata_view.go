package api

import "github.com/ktape/ktape/protocol"

// Typed zero-copy view of MetadataResponse. See 01_fetch_view.go.

var metadata = struct {
	throttle, brokers, nodeID, host, port, rack, clusterID, controllerID, topics, errorCode protocol.Handle
	tErr, tName, tID, internal, partitions                                                  protocol.Handle
	pErr, pIndex, leader, leaderEpoch, replicas, isr, offline                               protocol.Handle
}{}

func init() {
	r := Metadata.Response
	m := &metadata
	m.throttle, m.brokers, m.clusterID = r.Handle("ThrottleTimeMs"), r.Handle("Brokers"), r.Handle("ClusterId")
	m.controllerID, m.topics, m.errorCode = r.Handle("ControllerId"), r.Handle("Topics"), r.Handle("ErrorCode")
	b := r.Child(m.brokers)
	m.nodeID, m.host, m.port, m.rack = b.Handle("NodeId"), b.Handle("Host"), b.Handle("Port"), b.Handle("Rack")
	t := r.Child(m.topics)
	m.tErr, m.tName, m.tID = t.Handle("ErrorCode"), t.Handle("Name"), t.Handle("TopicId")
	m.internal, m.partitions = t.Handle("IsInternal"), t.Handle("Partitions")
	p := t.Child(m.partitions)
	m.pErr, m.pIndex, m.leader, m.leaderEpoch = p.Handle("ErrorCode"), p.Handle("PartitionIndex"), p.Handle("LeaderId"), p.Handle("LeaderEpoch")
	m.replicas, m.isr, m.offline = p.Handle("ReplicaNodes"), p.Handle("IsrNodes"), p.Handle("OfflineReplicas")
}

// MetadataResponseView is a zero-copy view of a MetadataResponse.
type MetadataResponseView struct{ v protocol.View }

// DecodeMetadataResponse validates a MetadataResponse body of version v.
func DecodeMetadataResponse(d *protocol.Decoder, v int16, body []byte) (MetadataResponseView, error) {
	view, err := d.Decode(Metadata.Response, v, body)
	return MetadataResponseView{view}, err
}

// ThrottleTimeMs is how long the broker throttled the request (v3+).
func (r MetadataResponseView) ThrottleTimeMs() int32 { return r.v.Int32(metadata.throttle) }

// ClusterID is the cluster id, nil when null or before v2.
func (r MetadataResponseView) ClusterID() []byte { return r.v.StringBytes(metadata.clusterID) }

// ControllerID is the controller's node id, -1 if unknown (v1+).
func (r MetadataResponseView) ControllerID() int32 { return r.v.Int32(metadata.controllerID) }

// ErrorCode is the top-level error (v13+).
func (r MetadataResponseView) ErrorCode() int16 { return r.v.Int16(metadata.errorCode) }

// NumBrokers is the number of brokers.
func (r MetadataResponseView) NumBrokers() int { return r.v.Array(metadata.brokers).Len() }

// Broker returns broker i; host and rack borrow the response (rack is nil
// when null).
func (r MetadataResponseView) Broker(i int) (nodeID int32, host []byte, port int32, rack []byte) {
	b := r.v.Array(metadata.brokers).At(i)
	return b.Int32(metadata.nodeID), b.StringBytes(metadata.host), b.Int32(metadata.port), b.StringBytes(metadata.rack)
}

// NumTopics is the number of topics.
func (r MetadataResponseView) NumTopics() int { return r.v.Array(metadata.topics).Len() }

// Topic returns topic i.
func (r MetadataResponseView) Topic(i int) MetadataTopic {
	return MetadataTopic{r.v.Array(metadata.topics).At(i)}
}

// MetadataTopic is one topic of a MetadataResponse.
type MetadataTopic struct{ v protocol.View }

// ErrorCode is the topic's error code.
func (t MetadataTopic) ErrorCode() int16 { return t.v.Int16(metadata.tErr) }

// Name is the topic name (nil when null, v12+ for topics asked by id).
func (t MetadataTopic) Name() []byte { return t.v.StringBytes(metadata.tName) }

// TopicID is the topic id (v10+).
func (t MetadataTopic) TopicID() [16]byte { return t.v.UUID(metadata.tID) }

// IsInternal reports an internal topic such as __consumer_offsets (v1+).
func (t MetadataTopic) IsInternal() bool { return t.v.Bool(metadata.internal) }

// NumPartitions is the number of partitions.
func (t MetadataTopic) NumPartitions() int { return t.v.Array(metadata.partitions).Len() }

// Partition returns partition i.
func (t MetadataTopic) Partition(i int) MetadataPartition {
	return MetadataPartition{t.v.Array(metadata.partitions).At(i)}
}

// MetadataPartition is one partition of a MetadataResponse topic.
type MetadataPartition struct{ v protocol.View }

// ErrorCode is the partition's error code.
func (p MetadataPartition) ErrorCode() int16 { return p.v.Int16(metadata.pErr) }

// Index is the partition index.
func (p MetadataPartition) Index() int32 { return p.v.Int32(metadata.pIndex) }

// Leader is the leader's node id, -1 if none.
func (p MetadataPartition) Leader() int32 { return p.v.Int32(metadata.leader) }

// LeaderEpoch is the leader epoch, -1 if unknown (v7+).
func (p MetadataPartition) LeaderEpoch() int32 { return p.v.Int32(metadata.leaderEpoch) }

// Replicas returns the replica node ids.
func (p MetadataPartition) Replicas() Int32List { return Int32List{p.v.Array(metadata.replicas)} }

// ISR returns the in-sync replica node ids.
func (p MetadataPartition) ISR() Int32List { return Int32List{p.v.Array(metadata.isr)} }

// OfflineReplicas returns the offline replica node ids (v5+).
func (p MetadataPartition) OfflineReplicas() Int32List {
	return Int32List{p.v.Array(metadata.offline)}
}

// Int32List is a zero-copy view of an array of int32.
type Int32List struct{ a protocol.ArrayView }

// Len is the number of elements.
func (l Int32List) Len() int { return l.a.Len() }

// At returns element i.
func (l Int32List) At(i int) int32 { return l.a.Int32At(i) }
