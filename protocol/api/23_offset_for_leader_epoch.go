package api

import . "github.com/ktape/ktape/protocol"

// OffsetForLeaderEpoch asks partition leaders for the end offset of a
// leader epoch, which followers use to truncate diverging logs and
// consumers use to detect log truncation after an unclean election.
//
// v0 (0.11, KIP-101); v1 (2.0) adds LeaderEpoch to the response (KIP-279);
// v2 (2.1) adds CurrentLeaderEpoch for fencing and ThrottleTimeMs
// (KIP-320); v3 (2.3) adds ReplicaId, -2 meaning a debug consumer (KIP-392);
// v4 is the first flexible version.
var OffsetForLeaderEpoch = NewAPI(APIDef{
	Key: 23, Name: "OffsetForLeaderEpoch", MinVersion: 0, MaxVersion: 4, FlexibleVersion: 4, Route: RouteLeader,
	Request: []Field{
		Int32("ReplicaId").V(3).Default(-2),
		Array("Topics",
			String("Topic"),
			Array("Partitions",
				Int32("Partition"),
				Int32("CurrentLeaderEpoch").V(2).Default(-1),
				Int32("LeaderEpoch"),
			),
		),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(2),
		Array("Topics",
			String("Topic"),
			Array("Partitions",
				Int16("ErrorCode"),
				Int32("Partition"),
				Int32("LeaderEpoch").V(1).Default(-1),
				Int64("EndOffset").Default(-1),
			),
		),
	},
})
