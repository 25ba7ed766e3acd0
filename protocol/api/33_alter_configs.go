package api

import . "github.com/ktape/ktape/protocol"

// AlterConfigs replaces the whole dynamic configuration of topics or
// brokers (KIP-133): keys not named are reset. Superseded by
// IncrementalAlterConfigs (KIP-339).
//
// v1 throttles after responding (KIP-219); v2 flexible versions (KIP-482).
var AlterConfigs = NewAPI(APIDef{
	Key: 33, Name: "AlterConfigs", MinVersion: 0, MaxVersion: 2, FlexibleVersion: 2, Route: RouteAny,
	Request: []Field{
		Array("Resources",
			Int8("ResourceType"),
			String("ResourceName"),
			Array("Configs",
				String("Name"),
				String("Value").Nullable(),
			),
		),
		Bool("ValidateOnly"),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Array("Responses",
			Int16("ErrorCode"),
			String("ErrorMessage").Nullable(),
			Int8("ResourceType"),
			String("ResourceName"),
		),
	},
})
