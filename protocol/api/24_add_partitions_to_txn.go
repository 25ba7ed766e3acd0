package api

import . "github.com/ktape/ktape/protocol"

// AddPartitionsToTxn adds partitions to a producer's ongoing transaction,
// before the producer writes to them. It goes to the transaction
// coordinator. Versions 0-3 are sent by clients for one transaction;
// versions 4+ are sent by brokers, batching several transactions, to verify
// (VerifyOnly) or add partitions.
//
// v0 (0.11, KIP-98); v1 (2.0) only changes throttling to happen after the
// response (KIP-219); v2 may return PRODUCER_FENCED (KIP-588); v3 is the
// first flexible version; v4 (3.6) replaces the single transaction with
// batched Transactions, adds VerifyOnly and a top-level ErrorCode
// (KIP-890); v5 may return TRANSACTION_ABORTABLE (KIP-890).
//
// Transactions (v4+) precedes the V3AndBelow fields as in Kafka's JSON;
// they are never on the wire together, so the order does not change the
// encoding.
var AddPartitionsToTxn = NewAPI(APIDef{
	Key: 24, Name: "AddPartitionsToTxn", MinVersion: 0, MaxVersion: 5, FlexibleVersion: 3, Route: RouteTxnCoordinator,
	Request: []Field{
		Array("Transactions",
			String("TransactionalId").V(4),
			Int64("ProducerId").V(4),
			Int16("ProducerEpoch").V(4),
			Bool("VerifyOnly").V(4).Default(false),
			Array("Topics",
				String("Name"),
				Int32s("Partitions"),
			).V(4),
		).V(4),
		String("V3AndBelowTransactionalId").V(0, 3),
		Int64("V3AndBelowProducerId").V(0, 3),
		Int16("V3AndBelowProducerEpoch").V(0, 3),
		Array("V3AndBelowTopics",
			String("Name"),
			Int32s("Partitions"),
		).V(0, 3),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Int16("ErrorCode").V(4),
		Array("ResultsByTransaction",
			String("TransactionalId").V(4),
			Array("TopicResults",
				String("Name"),
				Array("ResultsByPartition",
					Int32("PartitionIndex"),
					Int16("PartitionErrorCode"),
				),
			).V(4),
		).V(4),
		Array("ResultsByTopicV3AndBelow",
			String("Name"),
			Array("ResultsByPartition",
				Int32("PartitionIndex"),
				Int16("PartitionErrorCode"),
			),
		).V(0, 3),
	},
})
