package api

import . "github.com/ktape/ktape/protocol"

// Heartbeat keeps a member of a classic consumer group alive with the group
// coordinator and tells it when the group is rebalancing.
//
// v1 added ThrottleTimeMs; v2 no wire change; v3 GroupInstanceId for static
// membership (KIP-345); v4 flexible versions.
var Heartbeat = NewAPI(APIDef{
	Key: 12, Name: "Heartbeat", MinVersion: 0, MaxVersion: 4, FlexibleVersion: 4, Route: RouteGroupCoordinator,
	Request: []Field{
		String("GroupId"),
		Int32("GenerationId"),
		String("MemberId"),
		String("GroupInstanceId").V(3).Nullable().Default(nil),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(1),
		Int16("ErrorCode"),
	},
})
