package api

import . "github.com/ktape/ktape/protocol"

// DescribeGroups describes classic consumer groups: state, protocol,
// members and their assignments, from each group's coordinator.
//
// v1 added ThrottleTimeMs; v2 no wire change; v3 authorized operations
// (KIP-430); v4 GroupInstanceId of members (KIP-345); v5 flexible
// versions; v6 a per-group ErrorMessage, and GROUP_ID_NOT_FOUND for unknown
// groups (KIP-1043).
//
// v6 is newer than our Kafka JSON snapshot: it follows franz-go's kmsg
// v1.15.0.
var DescribeGroups = NewAPI(APIDef{
	Key: 15, Name: "DescribeGroups", MinVersion: 0, MaxVersion: 6, FlexibleVersion: 5, Route: RouteGroupCoordinator,
	Request: []Field{
		Strings("Groups"),
		Bool("IncludeAuthorizedOperations").V(3),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(1),
		Array("Groups",
			Int16("ErrorCode"),
			String("ErrorMessage").V(6).Nullable().Default(nil),
			String("GroupId"),
			String("GroupState"),
			String("ProtocolType"),
			String("ProtocolData"),
			Array("Members",
				String("MemberId"),
				String("GroupInstanceId").V(4).Nullable().Default(nil),
				String("ClientId"),
				String("ClientHost"),
				Bytes("MemberMetadata"),
				Bytes("MemberAssignment"),
			),
			Int32("AuthorizedOperations").V(3).Default(-2147483648),
		),
	},
})
