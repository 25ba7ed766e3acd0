package api

import . "github.com/ktape/ktape/protocol"

// TxnOffsetCommit stages consumer-group offset commits inside a transaction
// (KIP-98): the group coordinator applies them only when the transaction
// commits, and drops them if it aborts.
//
// v1 throttles after responding (KIP-219); v2 CommittedLeaderEpoch
// (KIP-320); v3 flexible versions (KIP-482) and the group member fields
// GenerationId, MemberId and GroupInstanceId so zombie consumers are fenced
// (KIP-447); v4 may return TRANSACTION_ABORTABLE (KIP-890); v5 has the v4
// layout and, with transactions v2, implicitly adds the group to the
// transaction (KIP-890 part 2); v6 names topics by TopicId instead of Name
// (KIP-1319), and Kafka renamed GenerationId to GenerationIdOrMemberEpoch
// there without changing the wire (we keep the older name).
//
// Kafka's 2024-10 JSON stops at v4; v5 and v6 follow franz-go kmsg v1.15.0.
var TxnOffsetCommit = NewAPI(APIDef{
	Key: 28, Name: "TxnOffsetCommit", MinVersion: 0, MaxVersion: 6, FlexibleVersion: 3, Route: RouteGroupCoordinator,
	Request: []Field{
		String("TransactionalId"),
		String("GroupId"),
		Int64("ProducerId"),
		Int16("ProducerEpoch"),
		Int32("GenerationId").V(3).Default(-1),
		String("MemberId").V(3).Default(""),
		String("GroupInstanceId").V(3).Nullable().Default(nil),
		Array("Topics",
			String("Name").V(0, 5),
			UUID("TopicId").V(6),
			Array("Partitions",
				Int32("PartitionIndex"),
				Int64("CommittedOffset"),
				Int32("CommittedLeaderEpoch").V(2).Default(-1),
				String("CommittedMetadata").Nullable(),
			),
		),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Array("Topics",
			String("Name").V(0, 5),
			UUID("TopicId").V(6),
			Array("Partitions",
				Int32("PartitionIndex"),
				Int16("ErrorCode"),
			),
		),
	},
})
