// Package api declares every Kafka API ktape speaks: one file per API key,
// named after the key (01_fetch.go), each holding one APIDef with the
// request and response schemas. Nothing here encodes or decodes by hand;
// the generic engine in package protocol interprets these declarations.
//
// Declarations follow Kafka's message specs (clients/src/main/resources/
// common/message/*.json): the same field names, order, types, version
// ranges, nullable versions, tags and defaults. Field order matters: it is
// the wire order. The cross-check tests in this package encode and decode
// every version of every API against franz-go's kmsg, byte for byte.
//
// The schema language is imported with a dot import in the declaration
// files only, so that a declaration reads like the protocol's BNF.
//
// Adding an API:
//  1. Write NN_name.go with `var Name = NewAPI(APIDef{...})` from Kafka's
//     JSON spec for that key; note its version history in the file comment.
//  2. Add it to All in api.go.
//  3. Add it to the kmsg cross-check table in crosscheck_test.go and run
//     `go test ./protocol/api`; every version must round-trip.
//  4. If a new field kind or feature is needed, extend package protocol,
//     never this package.
package api
