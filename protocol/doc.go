// Package protocol is ktape's Kafka wire-protocol engine: a schema language
// in which every Kafka API is declared once (package protocol/api holds the
// declarations), and one generic engine that reads, writes and sizes any
// declared message at any of its versions. There is no per-API encoding or
// decoding code anywhere.
//
// # Nouns
//
//   - Field, APIDef: a declaration, written with the constructors in dsl.go
//     (Int32("ThrottleTimeMs").V(1), Array("Topics", ...), .Tag(0), ...).
//   - API, Schema: a compiled declaration. A Schema is a request, a response
//     or a struct nested in one, with every field of every version; per
//     version it is resolved into a flat layout (compact encodings and tag
//     sections switched on in flexible versions, runs of fixed-width fields
//     merged for validation).
//   - Handle: a field resolved once by name (Schema.Handle) for O(1) access.
//   - Decoder and View: zero-copy reading. Decoder.Decode validates a
//     message once, checking every length and count against the bytes that
//     remain, and records where each field starts in a reusable index. A
//     View then reads any field in O(1) without allocating; strings, bytes
//     and records are sub-slices of the message. Views are valid until the
//     Decoder decodes another message.
//   - Record: an owned, mutable message (KAFKA-643's Record): read it with
//     Decode, build it with NewRecord/Set/Append, size it with Size and
//     write it with AppendTo in one pass, without allocating.
//   - RequestHeader, ReadFrame, AppendRequest: headers and framing.
//   - KafkaError, ErrorForCode: the protocol's error codes.
//
// # Guarantees
//
// Bad input is an error, never a panic: a *DecodeError names the message,
// version, field path and byte offset. Nothing is allocated in proportion
// to a count read from the input before that count has been checked against
// the bytes that remain (count × the element's minimum encoded size); the
// index a Decoder keeps grows with the message's size, not with any count.
// Unknown tagged fields are kept and written back. Panics are reserved for
// programming errors: a Handle used on another schema, or read as the wrong
// kind.
//
// # What it does not do
//
// It does not parse record batches (package record does) and it does not
// check semantic rules between fields (a broker's or client's job). Writing
// a Record at a version where one of its set fields does not exist silently
// leaves that field out, as for an "ignorable" field in Kafka's specs; no
// ignorable/non-ignorable distinction is made yet.
package protocol
