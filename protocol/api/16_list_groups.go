package api

import . "github.com/ktape/ktape/protocol"

// ListGroups lists the consumer (and other) groups a broker coordinates.
// Each broker only knows the groups it is the coordinator of, so listing
// every group in a cluster means asking every broker.
//
// v1 (0.11) adds ThrottleTimeMs (KIP-124); v2 (2.0) only changes throttling
// to happen after the response (KIP-219); v3 (2.4) is the first flexible
// version (KIP-482); v4 (2.6) adds StatesFilter and GroupState (KIP-518);
// v5 adds TypesFilter and GroupType (KIP-848).
var ListGroups = NewAPI(APIDef{
	Key: 16, Name: "ListGroups", MinVersion: 0, MaxVersion: 5, FlexibleVersion: 3, Route: RouteAny,
	Request: []Field{
		Strings("StatesFilter").V(4),
		Strings("TypesFilter").V(5),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(1),
		Int16("ErrorCode"),
		Array("Groups",
			String("GroupId"),
			String("ProtocolType"),
			String("GroupState").V(4),
			String("GroupType").V(5),
		),
	},
})
