package api

import . "github.com/ktape/ktape/protocol"

// OffsetCommit commits consumed offsets of a consumer group to its group
// coordinator.
//
// v1 added the generation and member id, and a per-partition
// CommitTimestamp (v1 only); v2 replaced it by a request-wide
// RetentionTimeMs, removed again in v5 (KIP-211); v3 ThrottleTimeMs; v6
// CommittedLeaderEpoch (KIP-320); v7 GroupInstanceId (KIP-345); v8
// flexible versions; v9 member epochs of the consumer group protocol
// (KIP-848); v10 topic ids replace names (KIP-848).
//
// Kafka's JSON lists CommittedLeaderEpoch (v6+) before CommitTimestamp
// (v1 only) where kmsg has the reverse; they never coexist in one version,
// so the wire is the same. v10 is newer than our Kafka JSON snapshot: it
// follows franz-go's kmsg v1.15.0.
var OffsetCommit = NewAPI(APIDef{
	Key: 8, Name: "OffsetCommit", MinVersion: 0, MaxVersion: 10, FlexibleVersion: 8, Route: RouteGroupCoordinator,
	Request: []Field{
		String("GroupId"),
		Int32("GenerationIdOrMemberEpoch").V(1).Default(-1),
		String("MemberId").V(1),
		String("GroupInstanceId").V(7).Nullable().Default(nil),
		Int64("RetentionTimeMs").V(2, 4).Default(-1),
		Array("Topics",
			String("Name").V(0, 9),
			UUID("TopicId").V(10),
			Array("Partitions",
				Int32("PartitionIndex"),
				Int64("CommittedOffset"),
				Int32("CommittedLeaderEpoch").V(6).Default(-1),
				Int64("CommitTimestamp").V(1, 1).Default(-1),
				String("CommittedMetadata").Nullable(),
			),
		),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(3),
		Array("Topics",
			String("Name").V(0, 9),
			UUID("TopicId").V(10),
			Array("Partitions",
				Int32("PartitionIndex"),
				Int16("ErrorCode"),
			),
		),
	},
})
