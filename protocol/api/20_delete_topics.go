package api

import . "github.com/ktape/ktape/protocol"

// DeleteTopics deletes topics, by name or (v6+) by topic id. Before Kafka
// 2.8 (KIP-590) it had to go to the controller; since then any broker
// forwards it.
//
// v0 (0.10.1, KIP-4); v1 (0.11) adds ThrottleTimeMs (KIP-124); v2 (2.0)
// only changes throttling to happen after the response (KIP-219); v3 (2.1)
// may return TOPIC_DELETION_DISABLED (KIP-322); v4 (2.4) is the first
// flexible version; v5 (2.7) adds ErrorMessage and may return
// THROTTLING_QUOTA_EXCEEDED (KIP-599); v6 (2.8) replaces TopicNames with
// Topics carrying a nullable name or a topic id, and adds TopicId to the
// response, whose Name becomes nullable (KIP-516).
//
// Topics (v6+) precedes TopicNames (v0-5) as in Kafka's JSON; the two are
// never on the wire together, so the order does not change the encoding.
var DeleteTopics = NewAPI(APIDef{
	Key: 20, Name: "DeleteTopics", MinVersion: 0, MaxVersion: 6, FlexibleVersion: 4, Route: RouteController,
	Request: []Field{
		Array("Topics",
			String("Name").V(6).Nullable().Default(nil),
			UUID("TopicId").V(6),
		).V(6),
		Strings("TopicNames").V(0, 5),
		Int32("TimeoutMs"),
	},
	Response: []Field{
		Int32("ThrottleTimeMs").V(1),
		Array("Responses",
			String("Name").NullableV(6),
			UUID("TopicId").V(6),
			Int16("ErrorCode"),
			String("ErrorMessage").V(5).Nullable().Default(nil),
		),
	},
})
