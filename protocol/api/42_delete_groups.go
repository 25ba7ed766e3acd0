package api

import . "github.com/ktape/ktape/protocol"

// DeleteGroups deletes empty consumer groups and their committed offsets
// (KIP-229).
//
// v1 throttles after responding (KIP-219); v2 flexible versions (KIP-482);
// v3 adds a per-group ErrorMessage. Kafka's 2024-10 JSON stops at v2; v3
// follows franz-go kmsg v1.15.0 and newer Kafka.
var DeleteGroups = NewAPI(APIDef{
	Key: 42, Name: "DeleteGroups", MinVersion: 0, MaxVersion: 3, FlexibleVersion: 2, Route: RouteGroupCoordinator,
	Request: []Field{
		Strings("GroupsNames"),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Array("Results",
			String("GroupId"),
			Int16("ErrorCode"),
			String("ErrorMessage").V(3).Nullable().Default(nil),
		),
	},
})
