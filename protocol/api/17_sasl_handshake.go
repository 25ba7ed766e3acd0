package api

import . "github.com/ktape/ktape/protocol"

// SaslHandshake opens SASL authentication on a connection: the client names
// a mechanism and the broker answers with the mechanisms it has enabled.
// It is per connection, so any broker answers it.
//
// v0 (0.10, KIP-43) is followed by raw SASL tokens outside the Kafka
// framing; v1 (1.0, KIP-152) is followed by SaslAuthenticate requests
// instead. Never flexible: the version cannot easily be bumped because of
// broken negotiation in clients up to 2.4 (KAFKA-9577).
var SaslHandshake = NewAPI(APIDef{
	Key: 17, Name: "SaslHandshake", MinVersion: 0, MaxVersion: 1, FlexibleVersion: NotFlexible, Route: RouteAny,
	Request: []Field{
		String("Mechanism"),
	},
	Response: []Field{
		Int16("ErrorCode"),
		Strings("Mechanisms"),
	},
})
