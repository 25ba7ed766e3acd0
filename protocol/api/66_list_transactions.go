package api

import . "github.com/ktape/ktape/protocol"

// ListTransactions lists the transactions a broker coordinates, filtered by
// state and producer id (KIP-664). Each broker only knows the transactional
// ids it coordinates, so a full listing asks every broker. Flexible from v0.
//
// v1 DurationFilter, for transactions open longer than a duration
// (KIP-994); v2 TransactionalIdPattern, a regular expression filter
// (KIP-1152). Kafka's 2024-10 JSON stops at v1; v2 follows franz-go kmsg
// v1.15.0.
var ListTransactions = NewAPI(APIDef{
	Key: 66, Name: "ListTransactions", MinVersion: 0, MaxVersion: 2, FlexibleVersion: 0, Route: RouteAny,
	Request: []Field{
		Strings("StateFilters"),
		Int64s("ProducerIdFilters"),
		Int64("DurationFilter").V(1).Default(-1),
		String("TransactionalIdPattern").V(2).Nullable().Default(nil),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Int16("ErrorCode"),
		Strings("UnknownStateFilters"),
		Array("TransactionStates",
			String("TransactionalId"),
			Int64("ProducerId"),
			String("TransactionState"),
		),
	},
})
