package api

import . "github.com/ktape/ktape/protocol"

// CreatePartitions raises the partition count of existing topics,
// optionally placing the new replicas (KIP-195).
//
// v1 throttles after responding (KIP-219); v2 flexible versions (KIP-482);
// v3 may return THROTTLING_QUOTA_EXCEEDED (KIP-599). Brokers before KIP-590
// (ZooKeeper mode) only accept it on the controller; later ones forward it.
var CreatePartitions = NewAPI(APIDef{
	Key: 37, Name: "CreatePartitions", MinVersion: 0, MaxVersion: 3, FlexibleVersion: 2, Route: RouteController,
	Request: []Field{
		Array("Topics",
			String("Name"),
			Int32("Count"),
			Array("Assignments",
				Int32s("BrokerIds"),
			).Nullable(),
		),
		Int32("TimeoutMs"),
		Bool("ValidateOnly"),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Array("Results",
			String("Name"),
			Int16("ErrorCode"),
			String("ErrorMessage").Nullable().Default(nil),
		),
	},
})
