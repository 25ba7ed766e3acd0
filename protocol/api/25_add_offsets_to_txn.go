package api

import . "github.com/ktape/ktape/protocol"

// AddOffsetsToTxn ties a consumer group to a producer's ongoing transaction
// (adding the group's __consumer_offsets partition to it), before the
// producer commits offsets with TxnOffsetCommit. It goes to the transaction
// coordinator.
//
// v0 (0.11, KIP-98); v1 (2.0) only changes throttling to happen after the
// response (KIP-219); v2 may return PRODUCER_FENCED (KIP-588); v3 is the
// first flexible version; v4 may return TRANSACTION_ABORTABLE (KIP-890).
var AddOffsetsToTxn = NewAPI(APIDef{
	Key: 25, Name: "AddOffsetsToTxn", MinVersion: 0, MaxVersion: 4, FlexibleVersion: 3, Route: RouteTxnCoordinator,
	Request: []Field{
		String("TransactionalId"),
		Int64("ProducerId"),
		Int16("ProducerEpoch"),
		String("GroupId"),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Int16("ErrorCode"),
	},
})
