package api

import . "github.com/ktape/ktape/protocol"

// OffsetFetch reads the committed offsets of consumer groups from their
// group coordinator.
//
// v1 read offsets committed to Kafka rather than ZooKeeper; v2 a null
// topic list fetches every topic, and a top-level ErrorCode; v3
// ThrottleTimeMs; v5 CommittedLeaderEpoch (KIP-320); v6 flexible versions;
// v7 RequireStable (KIP-447); v8 several groups per request (KIP-709),
// moving topics under Groups; v9 MemberId and MemberEpoch of the consumer
// group protocol (KIP-848); v10 topic ids replace names in Groups
// (KIP-848).
//
// v10 is newer than our Kafka JSON snapshot: it follows franz-go's kmsg
// v1.15.0.
var OffsetFetch = NewAPI(APIDef{
	Key: 9, Name: "OffsetFetch", MinVersion: 0, MaxVersion: 10, FlexibleVersion: 6, Route: RouteGroupCoordinator,
	Request: []Field{
		String("GroupId").V(0, 7),
		Array("Topics",
			String("Name"),
			Int32s("PartitionIndexes"),
		).V(0, 7).NullableV(2, 7),
		Array("Groups",
			String("GroupId"),
			String("MemberId").V(9).Nullable().Default(nil),
			Int32("MemberEpoch").V(9).Default(-1),
			Array("Topics",
				String("Name").V(8, 9),
				UUID("TopicId").V(10),
				Int32s("PartitionIndexes"),
			).Nullable(),
		).V(8),
		Bool("RequireStable").V(7).Default(false),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(3),
		Array("Topics",
			String("Name"),
			Array("Partitions",
				Int32("PartitionIndex"),
				Int64("CommittedOffset"),
				Int32("CommittedLeaderEpoch").V(5, 7).Default(-1),
				String("Metadata").Nullable(),
				Int16("ErrorCode"),
			),
		).V(0, 7),
		Int16("ErrorCode").V(2, 7).Default(0),
		Array("Groups",
			String("GroupId"),
			Array("Topics",
				String("Name").V(8, 9),
				UUID("TopicId").V(10),
				Array("Partitions",
					Int32("PartitionIndex"),
					Int64("CommittedOffset"),
					Int32("CommittedLeaderEpoch").Default(-1),
					String("Metadata").Nullable(),
					Int16("ErrorCode"),
				),
			),
			Int16("ErrorCode").Default(0),
		).V(8),
	},
})
