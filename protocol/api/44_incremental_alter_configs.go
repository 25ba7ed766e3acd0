package api

import . "github.com/ktape/ktape/protocol"

// IncrementalAlterConfigs sets, deletes, appends to or subtracts from
// individual configuration keys of topics, brokers and broker loggers,
// leaving other keys alone (KIP-339, replacing AlterConfigs).
//
// v1 flexible versions (KIP-482).
var IncrementalAlterConfigs = NewAPI(APIDef{
	Key: 44, Name: "IncrementalAlterConfigs", MinVersion: 0, MaxVersion: 1, FlexibleVersion: 1, Route: RouteAny,
	Request: []Field{
		Array("Resources",
			Int8("ResourceType"),
			String("ResourceName"),
			Array("Configs",
				String("Name"),
				Int8("ConfigOperation"),
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
