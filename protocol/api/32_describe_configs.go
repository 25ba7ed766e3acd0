package api

import . "github.com/ktape/ktape/protocol"

// DescribeConfigs returns the configuration entries of topics, brokers and
// broker loggers (KIP-133), with where each value comes from.
//
// v1 adds IncludeSynonyms, ConfigSource replacing IsDefault, and the
// synonyms list (KIP-226); v2 throttles after responding (KIP-219); v3
// IncludeDocumentation, ConfigType and Documentation (KIP-569); v4 flexible
// versions (KIP-482). v0 is deprecated (KIP-896).
var DescribeConfigs = NewAPI(APIDef{
	Key: 32, Name: "DescribeConfigs", MinVersion: 0, MaxVersion: 4, FlexibleVersion: 4, Route: RouteAny,
	Request: []Field{
		Array("Resources",
			Int8("ResourceType"),
			String("ResourceName"),
			Strings("ConfigurationKeys").Nullable(),
		),
		Bool("IncludeSynonyms").V(1).Default(false),
		Bool("IncludeDocumentation").V(3).Default(false),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Array("Results",
			Int16("ErrorCode"),
			String("ErrorMessage").Nullable(),
			Int8("ResourceType"),
			String("ResourceName"),
			Array("Configs",
				String("Name"),
				String("Value").Nullable(),
				Bool("ReadOnly"),
				Bool("IsDefault").V(0, 0),
				Int8("ConfigSource").V(1).Default(-1),
				Bool("IsSensitive"),
				Array("Synonyms",
					String("Name"),
					String("Value").Nullable(),
					Int8("Source"),
				).V(1),
				Int8("ConfigType").V(3).Default(0),
				String("Documentation").V(3).Nullable(),
			),
		),
	},
})
