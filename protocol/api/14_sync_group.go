package api

import . "github.com/ktape/ktape/protocol"

// SyncGroup ends a classic consumer group rebalance: the leader sends the
// assignments, and every member receives its own from the group
// coordinator.
//
// v1 added ThrottleTimeMs; v2 no wire change; v3 GroupInstanceId for static
// membership (KIP-345); v4 flexible versions; v5 ProtocolType and
// ProtocolName (KIP-559).
var SyncGroup = NewAPI(APIDef{
	Key: 14, Name: "SyncGroup", MinVersion: 0, MaxVersion: 5, FlexibleVersion: 4, Route: RouteGroupCoordinator,
	Request: []Field{
		String("GroupId"),
		Int32("GenerationId"),
		String("MemberId"),
		String("GroupInstanceId").V(3).Nullable().Default(nil),
		String("ProtocolType").V(5).Nullable().Default(nil),
		String("ProtocolName").V(5).Nullable().Default(nil),
		Array("Assignments",
			String("MemberId"),
			Bytes("Assignment"),
		),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(1),
		Int16("ErrorCode"),
		String("ProtocolType").V(5).Nullable().Default(nil),
		String("ProtocolName").V(5).Nullable().Default(nil),
		Bytes("Assignment"),
	},
})
