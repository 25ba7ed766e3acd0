package api

import . "github.com/ktape/ktape/protocol"

// FindCoordinator finds the broker coordinating a consumer group, a
// transactional id or a share group; any broker can answer.
//
// v1 added KeyType for transaction coordinators (KIP-98), ThrottleTimeMs
// and ErrorMessage; v3 flexible versions; v4 batched lookups of several
// keys, Coordinators replacing the single result (KIP-699); v5 no wire
// change (KIP-890 error handling); v6 no wire change, share group keys
// (KIP-932).
var FindCoordinator = NewAPI(APIDef{
	Key: 10, Name: "FindCoordinator", MinVersion: 0, MaxVersion: 6, FlexibleVersion: 3, Route: RouteAny,
	Request: []Field{
		String("Key").V(0, 3),
		Int8("KeyType").V(1).Default(0),
		Strings("CoordinatorKeys").V(4),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(1),
		Int16("ErrorCode").V(0, 3),
		String("ErrorMessage").V(1, 3).Nullable(),
		Int32("NodeId").V(0, 3),
		String("Host").V(0, 3),
		Int32("Port").V(0, 3),
		Array("Coordinators",
			String("Key"),
			Int32("NodeId"),
			String("Host"),
			Int32("Port"),
			Int16("ErrorCode"),
			String("ErrorMessage").Nullable(),
		).V(4),
	},
})
