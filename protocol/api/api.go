package api

import "github.com/ktape/ktape/protocol"

// All lists every API ktape declares, by ascending key.
var All = []*protocol.API{
	Produce,
	Fetch,
	ListOffsets,
	Metadata,
	OffsetCommit,
	OffsetFetch,
	FindCoordinator,
	JoinGroup,
	Heartbeat,
	LeaveGroup,
	SyncGroup,
	DescribeGroups,
	ListGroups,
	SaslHandshake,
	ApiVersions,
	CreateTopics,
	DeleteTopics,
	DeleteRecords,
	InitProducerId,
	OffsetForLeaderEpoch,
	AddPartitionsToTxn,
	AddOffsetsToTxn,
	EndTxn,
	TxnOffsetCommit,
	DescribeConfigs,
	AlterConfigs,
	SaslAuthenticate,
	CreatePartitions,
	DeleteGroups,
	IncrementalAlterConfigs,
	DescribeCluster,
	DescribeProducers,
	DescribeTransactions,
	ListTransactions,
}

var byKey = func() map[int16]*protocol.API {
	m := make(map[int16]*protocol.API, len(All))
	for _, a := range All {
		m[a.Key] = a
	}
	return m
}()

// ByKey returns the API with the given key, or nil if ktape does not know it.
func ByKey(key int16) *protocol.API { return byKey[key] }
