package api

import . "github.com/ktape/ktape/protocol"

// ApiVersions asks a broker which versions of every API it supports; it is
// the first request on a connection. Its response always uses response
// header v0, even in flexible versions, so that a client can read the error
// of a version the broker does not know (KIP-511).
//
// v0 (0.10, KIP-35); v1 (0.11) adds ThrottleTimeMs (KIP-124); v2 (2.0)
// only changes throttling to happen after the response (KIP-219); v3 (2.4)
// is the first flexible version and adds ClientSoftwareName and
// ClientSoftwareVersion (KIP-511, KIP-482); the tagged SupportedFeatures,
// FinalizedFeaturesEpoch and FinalizedFeatures came later to v3 (KIP-584),
// and ZkMigrationReady (KIP-866); v4 (3.9) lets SupportedFeatures carry a
// MinVersion of 0 (KAFKA-17011); v5 adds ClusterId and NodeId to the
// request so a broker can reject a connection meant for another broker or
// cluster (KIP-1242).
//
// v5 is newer than the Kafka JSON snapshot these declarations follow; its
// layout (two inline v5+ fields after ClientSoftwareVersion: a nullable
// string and an int32 defaulting to -1, response unchanged) is taken from
// franz-go kmsg v1.15.0, and the field names are ours in Kafka's style.
var ApiVersions = NewAPI(APIDef{
	Key: 18, Name: "ApiVersions", MinVersion: 0, MaxVersion: 5, FlexibleVersion: 3, Route: RouteAny,
	Request: []Field{
		String("ClientSoftwareName").V(3),
		String("ClientSoftwareVersion").V(3),
		String("ClusterId").V(5).Nullable().Default(nil),
		Int32("NodeId").V(5).Default(-1),
	},
	Response: []Field{
		Int16("ErrorCode"),
		Array("ApiKeys",
			Int16("ApiKey"),
			Int16("MinVersion"),
			Int16("MaxVersion"),
		),
		Int32("ThrottleTimeMs").V(1),
		Array("SupportedFeatures",
			String("Name").V(3),
			Int16("MinVersion").V(3),
			Int16("MaxVersion").V(3),
		).V(3).Tag(0),
		Int64("FinalizedFeaturesEpoch").V(3).Default(-1).Tag(1),
		Array("FinalizedFeatures",
			String("Name").V(3),
			Int16("MaxVersionLevel").V(3),
			Int16("MinVersionLevel").V(3),
		).V(3).Tag(2),
		Bool("ZkMigrationReady").V(3).Default(false).Tag(3),
	},
})
