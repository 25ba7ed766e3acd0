package api

import . "github.com/ktape/ktape/protocol"

// Produce writes record batches to partition leaders.
//
// v1 added ThrottleTimeMs; v2 LogAppendTimeMs (KIP-32); v3 (0.11) the
// TransactionalId and record batches v2 (KIP-98); v5 LogStartOffset; v8
// per-record errors, RecordErrors and ErrorMessage (KIP-467); v9 flexible
// versions; v10 the tagged CurrentLeader and NodeEndpoints for leader
// discovery (KIP-951); v11 no wire change (KIP-951 client support); v12
// no wire change (KIP-890 transactions v2); v13 topic ids replace names
// (KIP-516).
//
// v12-v13 are newer than our Kafka JSON snapshot: laid out after franz-go's
// kmsg v1.15.0. Note that kmsg writes the tagged CurrentLeader and
// NodeEndpoints in every flexible version (v9+), while Kafka declares them
// for v10+ only; this declaration follows Kafka.
var Produce = NewAPI(APIDef{
	Key: 0, Name: "Produce", MinVersion: 0, MaxVersion: 13, FlexibleVersion: 9, Route: RouteLeader,
	Request: []Field{
		String("TransactionalId").V(3).Nullable().Default(nil),
		Int16("Acks"),
		Int32("TimeoutMs"),
		Array("TopicData",
			String("Name").V(0, 12),
			UUID("TopicId").V(13),
			Array("PartitionData",
				Int32("Index"),
				Records("Records"),
			),
		),
	},
	Response: []Field{
		Array("Responses",
			String("Name").V(0, 12),
			UUID("TopicId").V(13),
			Array("PartitionResponses",
				Int32("Index"),
				Int16("ErrorCode"),
				Int64("BaseOffset"),
				Int64("LogAppendTimeMs").V(2).Default(-1),
				Int64("LogStartOffset").V(5).Default(-1),
				Array("RecordErrors",
					Int32("BatchIndex"),
					String("BatchIndexErrorMessage").Nullable().Default(nil),
				).V(8),
				String("ErrorMessage").V(8).Nullable().Default(nil),
				Struct("CurrentLeader",
					Int32("LeaderId").Default(-1),
					Int32("LeaderEpoch").Default(-1),
				).V(10).Tag(0),
			),
		),
		Int32("ThrottleTimeMs").V(1).Default(0),
		Array("NodeEndpoints",
			Int32("NodeId"),
			String("Host"),
			Int32("Port"),
			String("Rack").Nullable().Default(nil),
		).V(10).Tag(0),
	},
})
