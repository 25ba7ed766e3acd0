package api

import . "github.com/ktape/ktape/protocol"

// DescribeTransactions returns the state, timeout, producer and partitions
// of transactions held by a transaction coordinator (KIP-664). Flexible
// from v0; only v0 exists.
var DescribeTransactions = NewAPI(APIDef{
	Key: 65, Name: "DescribeTransactions", MinVersion: 0, MaxVersion: 0, FlexibleVersion: 0, Route: RouteTxnCoordinator,
	Request: []Field{
		Strings("TransactionalIds"),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Array("TransactionStates",
			Int16("ErrorCode"),
			String("TransactionalId"),
			String("TransactionState"),
			Int32("TransactionTimeoutMs"),
			Int64("TransactionStartTimeMs"),
			Int64("ProducerId"),
			Int16("ProducerEpoch"),
			Array("Topics",
				String("Topic"),
				Int32s("Partitions"),
			),
		),
	},
})
