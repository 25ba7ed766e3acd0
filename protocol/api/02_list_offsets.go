package api

import . "github.com/ktape/ktape/protocol"

// ListOffsets looks up offsets of partitions by timestamp (or the special
// timestamps -1 latest, -2 earliest, and newer ones below), asking each
// partition's leader.
//
// v1 replaced the list of old-style offsets by one timestamp and offset
// (KIP-79); v2 IsolationLevel and ThrottleTimeMs (KIP-98); v4
// CurrentLeaderEpoch and LeaderEpoch (KIP-320); v5 no wire change
// (KIP-207); v6 flexible versions; v7 timestamp -3, max timestamp
// (KIP-734); v8 timestamp -4, local log start offset (KIP-405); v9
// timestamp -5, latest tiered offset (KIP-1005); v10 TimeoutMs (KIP-1075);
// v11 no wire change, timestamp -6, earliest pending upload offset
// (KIP-1023).
//
// v11 is newer than our Kafka JSON snapshot: it follows franz-go's kmsg
// v1.15.0.
var ListOffsets = NewAPI(APIDef{
	Key: 2, Name: "ListOffsets", MinVersion: 0, MaxVersion: 11, FlexibleVersion: 6, Route: RouteLeader,
	Request: []Field{
		Int32("ReplicaId"),
		Int8("IsolationLevel").V(2),
		Array("Topics",
			String("Name"),
			Array("Partitions",
				Int32("PartitionIndex"),
				Int32("CurrentLeaderEpoch").V(4).Default(-1),
				Int64("Timestamp"),
				Int32("MaxNumOffsets").V(0, 0).Default(1),
			),
		),
		Int32("TimeoutMs").V(10),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(2),
		Array("Topics",
			String("Name"),
			Array("Partitions",
				Int32("PartitionIndex"),
				Int16("ErrorCode"),
				Int64s("OldStyleOffsets").V(0, 0),
				Int64("Timestamp").V(1).Default(-1),
				Int64("Offset").V(1).Default(-1),
				Int32("LeaderEpoch").V(4).Default(-1),
			),
		),
	},
})
