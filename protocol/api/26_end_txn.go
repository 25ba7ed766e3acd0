package api

import . "github.com/ktape/ktape/protocol"

// EndTxn commits or aborts a producer's ongoing transaction. It goes to the
// transaction coordinator, which then writes the transaction markers.
//
// v0 (0.11, KIP-98); v1 (2.0) only changes throttling to happen after the
// response (KIP-219); v2 may return PRODUCER_FENCED (KIP-588); v3 is the
// first flexible version; v4 may return TRANSACTION_ABORTABLE (KIP-890);
// v5 bumps the epoch on every transaction and returns the ProducerId and
// ProducerEpoch to use next (KIP-890 part 2).
var EndTxn = NewAPI(APIDef{
	Key: 26, Name: "EndTxn", MinVersion: 0, MaxVersion: 5, FlexibleVersion: 3, Route: RouteTxnCoordinator,
	Request: []Field{
		String("TransactionalId"),
		Int64("ProducerId"),
		Int16("ProducerEpoch"),
		Bool("Committed"),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Int16("ErrorCode"),
		Int64("ProducerId").V(5).Default(-1),
		Int16("ProducerEpoch").V(5).Default(-1),
	},
})
