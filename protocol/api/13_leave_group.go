package api

import . "github.com/ktape/ktape/protocol"

// LeaveGroup removes members from a classic consumer group through the group
// coordinator.
//
// v1 added ThrottleTimeMs; v2 no wire change; v3 removes several members at
// once, by member id or static GroupInstanceId (KIP-345); v4 flexible
// versions; v5 Reason (KIP-800).
var LeaveGroup = NewAPI(APIDef{
	Key: 13, Name: "LeaveGroup", MinVersion: 0, MaxVersion: 5, FlexibleVersion: 4, Route: RouteGroupCoordinator,
	Request: []Field{
		String("GroupId"),
		String("MemberId").V(0, 2),
		Array("Members",
			String("MemberId"),
			String("GroupInstanceId").Nullable().Default(nil),
			String("Reason").V(5).Nullable().Default(nil),
		).V(3),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(1),
		Int16("ErrorCode"),
		Array("Members",
			String("MemberId"),
			String("GroupInstanceId").Nullable(),
			Int16("ErrorCode"),
		).V(3),
	},
})
