package api

import . "github.com/ktape/ktape/protocol"

// DeleteRecords moves the log start offset of partitions forward, deleting
// every record before the given offset (-1: the high watermark). It goes to
// the leader of each partition.
//
// v0 (0.11, KIP-107); v1 (2.0) only changes throttling to happen after the
// response (KIP-219); v2 (2.4) is the first flexible version (KIP-482).
var DeleteRecords = NewAPI(APIDef{
	Key: 21, Name: "DeleteRecords", MinVersion: 0, MaxVersion: 2, FlexibleVersion: 2, Route: RouteLeader,
	Request: []Field{
		Array("Topics",
			String("Name"),
			Array("Partitions",
				Int32("PartitionIndex"),
				Int64("Offset"),
			),
		),
		Int32("TimeoutMs"),
	},
	Response: []Field{
		Int32("ThrottleTimeMs"),
		Array("Topics",
			String("Name"),
			Array("Partitions",
				Int32("PartitionIndex"),
				Int64("LowWatermark"),
				Int16("ErrorCode"),
			),
		),
	},
})
