package api

import . "github.com/ktape/ktape/protocol"

// SaslAuthenticate carries one round of SASL authentication bytes, framed
// as a Kafka request so the broker can report errors (KIP-152); it follows
// a SaslHandshake v1.
//
// v1 SessionLifetimeMs for re-authentication (KIP-368); v2 flexible
// versions (KIP-482).
var SaslAuthenticate = NewAPI(APIDef{
	Key: 36, Name: "SaslAuthenticate", MinVersion: 0, MaxVersion: 2, FlexibleVersion: 2, Route: RouteAny,
	Request: []Field{
		Bytes("AuthBytes"),
	},
	Response: []Field{
		Int16("ErrorCode"),
		String("ErrorMessage").Nullable(),
		Bytes("AuthBytes"),
		Int64("SessionLifetimeMs").V(1).Default(0),
	},
})
