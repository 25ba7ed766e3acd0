package api

import . "github.com/ktape/ktape/protocol"

// DescribeCluster returns the cluster id, controller and brokers for admin
// clients, separately from Metadata (KIP-700). Flexible from v0.
//
// v1 EndpointType, to describe controllers instead of brokers (KIP-919);
// v2 IncludeFencedBrokers and per-broker IsFenced (KIP-1073). Kafka's
// 2024-10 JSON stops at v1; v2 follows franz-go kmsg v1.15.0.
var DescribeCluster = NewAPI(APIDef{
	Key: 60, Name: "DescribeCluster", MinVersion: 0, MaxVersion: 2, FlexibleVersion: 0, Route: RouteAny,
	Request: []Field{
		Bool("IncludeClusterAuthorizedOperations"),
		Int8("EndpointType").V(1).Default(1),
		Bool("IncludeFencedBrokers").V(2).Default(false),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Int16("ErrorCode"),
		String("ErrorMessage").Nullable().Default(nil),
		Int8("EndpointType").V(1).Default(1),
		String("ClusterId"),
		Int32("ControllerId").Default(-1),
		Array("Brokers",
			Int32("BrokerId"),
			String("Host"),
			Int32("Port"),
			String("Rack").Nullable().Default(nil),
			Bool("IsFenced").V(2).Default(false),
		),
		Int32("ClusterAuthorizedOperations").Default(-2147483648),
	},
})
