package api

import . "github.com/ktape/ktape/protocol"

// DescribeProducers lists the active idempotent and transactional producers
// of partitions, with their last sequence and open transaction start, to
// find hanging transactions (KIP-664). Flexible from v0; only v0 exists.
//
// Each partition must be asked of its leader (others answer
// NOT_LEADER_OR_FOLLOWER), hence RouteLeader.
var DescribeProducers = NewAPI(APIDef{
	Key: 61, Name: "DescribeProducers", MinVersion: 0, MaxVersion: 0, FlexibleVersion: 0, Route: RouteLeader,
	Request: []Field{
		Array("Topics",
			String("Name"),
			Int32s("PartitionIndexes"),
		),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Array("Topics",
			String("Name"),
			Array("Partitions",
				Int32("PartitionIndex"),
				Int16("ErrorCode"),
				String("ErrorMessage").Nullable().Default(nil),
				Array("ActiveProducers",
					Int64("ProducerId"),
					Int32("ProducerEpoch"),
					Int32("LastSequence").Default(-1),
					Int64("LastTimestamp").Default(-1),
					Int32("CoordinatorEpoch"),
					Int64("CurrentTxnStartOffset").Default(-1),
				),
			),
		),
	},
})
