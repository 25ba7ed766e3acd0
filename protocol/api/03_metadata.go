package api

import . "github.com/ktape/ktape/protocol"

// Metadata describes the brokers of the cluster and the partitions and
// leaders of the named topics (or of every topic).
//
// v1 added Rack, ControllerId, IsInternal, and a null topic list meaning
// every topic; v2 ClusterId (KIP-78); v3 ThrottleTimeMs; v4
// AllowAutoTopicCreation; v5 OfflineReplicas (KIP-112); v7 LeaderEpoch
// (KIP-320); v8 authorized operations (KIP-430); v9 flexible versions; v10
// topic ids (KIP-516); v11 removed IncludeClusterAuthorizedOperations and
// ClusterAuthorizedOperations in favour of DescribeCluster (KIP-700); v12
// nullable topic names in responses, for lookups by id (KIP-516); v13 a
// top-level ErrorCode for rebootstrapping (KIP-1102).
//
// v13 is newer than our Kafka JSON snapshot: it follows franz-go's kmsg
// v1.15.0.
var Metadata = NewAPI(APIDef{
	Key: 3, Name: "Metadata", MinVersion: 0, MaxVersion: 13, FlexibleVersion: 9, Route: RouteAny,
	Request: []Field{
		Array("Topics",
			UUID("TopicId").V(10),
			String("Name").NullableV(10),
		).NullableV(1),
		Bool("AllowAutoTopicCreation").V(4).Default(true),
		Bool("IncludeClusterAuthorizedOperations").V(8, 10),
		Bool("IncludeTopicAuthorizedOperations").V(8),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(3),
		Array("Brokers",
			Int32("NodeId"),
			String("Host"),
			Int32("Port"),
			String("Rack").V(1).Nullable().Default(nil),
		),
		String("ClusterId").V(2).Nullable().Default(nil),
		Int32("ControllerId").V(1).Default(-1),
		Array("Topics",
			Int16("ErrorCode"),
			String("Name").NullableV(12),
			UUID("TopicId").V(10),
			Bool("IsInternal").V(1).Default(false),
			Array("Partitions",
				Int16("ErrorCode"),
				Int32("PartitionIndex"),
				Int32("LeaderId"),
				Int32("LeaderEpoch").V(7).Default(-1),
				Int32s("ReplicaNodes"),
				Int32s("IsrNodes"),
				Int32s("OfflineReplicas").V(5),
			),
			Int32("TopicAuthorizedOperations").V(8).Default(-2147483648),
		),
		Int32("ClusterAuthorizedOperations").V(8, 10).Default(-2147483648),
		Int16("ErrorCode").V(13),
	},
})
