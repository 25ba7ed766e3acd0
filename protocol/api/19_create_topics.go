package api

import . "github.com/ktape/ktape/protocol"

// CreateTopics creates topics, with either a partition count and
// replication factor or an explicit replica assignment, and optional topic
// configs. Before Kafka 2.8 (KIP-590) it had to go to the controller; since
// then any broker forwards it.
//
// v0 (0.10.1, KIP-4); v1 (0.10.2) adds ValidateOnly and the per-topic
// ErrorMessage (KIP-108); v2 (0.11) adds ThrottleTimeMs (KIP-124); v3 (2.0)
// only changes throttling to happen after the response (KIP-219); v4 (2.4)
// lets NumPartitions and ReplicationFactor be -1 for the broker defaults
// (KIP-464); v5 (2.4) is the first flexible version and returns the
// created topic's partitions, replication factor and configs (KIP-525);
// v6 (2.7) may return THROTTLING_QUOTA_EXCEEDED (KIP-599); v7 returns the
// new topic's TopicId (KIP-516).
//
// Kafka's JSON spells the two top-level request fields "timeoutMs" and
// "validateOnly"; they are capitalized here like every other field.
var CreateTopics = NewAPI(APIDef{
	Key: 19, Name: "CreateTopics", MinVersion: 0, MaxVersion: 7, FlexibleVersion: 5, Route: RouteController,
	Request: []Field{
		Array("Topics",
			String("Name"),
			Int32("NumPartitions"),
			Int16("ReplicationFactor"),
			Array("Assignments",
				Int32("PartitionIndex"),
				Int32s("BrokerIds"),
			),
			Array("Configs",
				String("Name"),
				String("Value").Nullable(),
			),
		),
		Int32("TimeoutMs").Default(60000),
		Bool("ValidateOnly").V(1).Default(false),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(2),
		Array("Topics",
			String("Name"),
			UUID("TopicId").V(7),
			Int16("ErrorCode"),
			String("ErrorMessage").V(1).Nullable(),
			Int16("TopicConfigErrorCode").V(5).Tag(0),
			Int32("NumPartitions").V(5).Default(-1),
			Int16("ReplicationFactor").V(5).Default(-1),
			Array("Configs",
				String("Name").V(5),
				String("Value").V(5).Nullable(),
				Bool("ReadOnly").V(5),
				Int8("ConfigSource").V(5).Default(-1),
				Bool("IsSensitive").V(5),
			).V(5).Nullable(),
		),
	},
})
