package api

import . "github.com/ktape/ktape/protocol"

// InitProducerId obtains a producer id and epoch: the first request of an
// idempotent or transactional producer. Transactional producers (a non-null
// TransactionalId) must send it to their transaction coordinator, which is
// the route declared here; idempotent-only producers (null TransactionalId)
// may send it to any broker.
//
// v0 (0.11, KIP-98); v1 (2.0) only changes throttling to happen after the
// response (KIP-219); v2 (2.4) is the first flexible version; v3 (2.5) adds
// ProducerId and ProducerEpoch so a producer can recover its epoch after an
// error (KIP-360); v4 may return PRODUCER_FENCED (KIP-588); v5 may return
// TRANSACTION_ABORTABLE (KIP-890).
var InitProducerId = NewAPI(APIDef{
	Key: 22, Name: "InitProducerId", MinVersion: 0, MaxVersion: 5, FlexibleVersion: 2, Route: RouteTxnCoordinator,
	Request: []Field{
		String("TransactionalId").Nullable(),
		Int32("TransactionTimeoutMs"),
		Int64("ProducerId").V(3).Default(-1),
		Int16("ProducerEpoch").V(3).Default(-1),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Int16("ErrorCode"),
		Int64("ProducerId").Default(-1),
		Int16("ProducerEpoch"),
	},
})
