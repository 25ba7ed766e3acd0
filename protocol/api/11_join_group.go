package api

import . "github.com/ktape/ktape/protocol"

// JoinGroup joins a member to a classic consumer group, or rejoins it for
// a rebalance, through the group coordinator.
//
// v1 added RebalanceTimeoutMs; v2 ThrottleTimeMs; v4 no wire change,
// MEMBER_ID_REQUIRED (KIP-394); v5 GroupInstanceId for static membership
// (KIP-345); v6 flexible versions; v7 ProtocolType in responses and a
// nullable ProtocolName (KIP-559); v8 Reason (KIP-800); v9 SkipAssignment
// (KIP-814).
var JoinGroup = NewAPI(APIDef{
	Key: 11, Name: "JoinGroup", MinVersion: 0, MaxVersion: 9, FlexibleVersion: 6, Route: RouteGroupCoordinator,
	Request: []Field{
		String("GroupId"),
		Int32("SessionTimeoutMs"),
		Int32("RebalanceTimeoutMs").V(1).Default(-1),
		String("MemberId"),
		String("GroupInstanceId").V(5).Nullable().Default(nil),
		String("ProtocolType"),
		Array("Protocols",
			String("Name"),
			Bytes("Metadata"),
		),
		String("Reason").V(8).Nullable().Default(nil),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(2),
		Int16("ErrorCode"),
		Int32("GenerationId").Default(-1),
		String("ProtocolType").V(7).Nullable().Default(nil),
		String("ProtocolName").NullableV(7),
		String("Leader"),
		Bool("SkipAssignment").V(9).Default(false),
		String("MemberId"),
		Array("Members",
			String("MemberId"),
			String("GroupInstanceId").V(5).Nullable().Default(nil),
			Bytes("Metadata"),
		),
	},
})
