package api

// Hostile input: each malformed message must come back as a
// *protocol.DecodeError naming the field path, the byte offset and what is
// wrong, never a panic, and never an allocation sized by a count read from
// the input (DESIGN.md principle 7).

import (
	"bytes"
	"fmt"
	"math/rand"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/ktape/ktape/protocol"
)

// fetch4TwoPartitions is a FetchResponse v4 with one topic and two
// partitions, up to partition 1's AbortedTransactions (offset 67).
var fetch4TwoPartitions = hexBytes(
	"00000000",       // 0  ThrottleTimeMs
	"00000001",       // 4  Responses: 1
	"0001", str("t"), // 8  [0].Topic "t"
	"00000002",         // 11 [0].Partitions: 2
	"00000000",         // 15   [0].PartitionIndex 0
	"0000",             // 19   [0].ErrorCode
	"0000000000000000", // 21   [0].HighWatermark
	"0000000000000000", // 29   [0].LastStableOffset
	"ffffffff",         // 37   [0].AbortedTransactions: null
	"00000000",         // 41   [0].Records: empty
	"00000001",         // 45   [1].PartitionIndex 1
	"0000",             // 49   [1].ErrorCode
	"0000000000000000", // 51   [1].HighWatermark
	"0000000000000000", // 59   [1].LastStableOffset
)

// fetch12Partition is fetch12Body (golden_test.go) up to partition 0's tag
// section, which starts at offset 58.
var fetch12Partition = fetch12Body[:58:58]

// fetch12WithPartitionTags is a FetchResponse v12 whose partition 0 has the
// given tag section (hex), followed by empty topic and top tag sections.
func fetch12WithPartitionTags(tags ...string) []byte {
	b := append(fetch12Partition[:58:58], hexBytes(tags...)...)
	return append(b, 0x00, 0x00)
}

// currentLeader35 is a CurrentLeader value: LeaderId 3, LeaderEpoch 5,
// empty tag section; 9 bytes.
const currentLeader35 = "00000003 00000005 00"

// kitchenSinkV0Prefix is a KitchenSink request v0 up to its Varint field
// (offset 46).
var kitchenSinkV0Prefix = hexBytes(
	"01",                               // 0  Bool
	"02",                               // 1  Int8
	"0003",                             // 2  Int16
	"0004",                             // 4  Uint16
	"00000005",                         // 6  Int32
	"00000006",                         // 10 Uint32
	"0000000000000007",                 // 14 Int64
	"3ff0000000000000",                 // 22 Float64 1.0
	"00112233445566778899aabbccddeeff", // 30 UUID
)

// kitchenSinkV0UpToNullableStruct continues kitchenSinkV0Prefix up to the
// NullableStruct's presence marker (offset 68).
var kitchenSinkV0UpToNullableStruct = append(kitchenSinkV0Prefix[:46:46], hexBytes(
	"02",       // 46 Varint 1
	"03",       // 47 Varlong -2
	"0000",     // 48 String ""
	"ffff",     // 50 NullableString null
	"00000000", // 52 Bytes empty
	"00000000", // 56 NullableBytes (not nullable in v0) empty
	"ffffffff", // 60 Records null
	"00000009", // 64 Struct.A 9 (Struct.B is v1+)
)...)

// kitchenSinkDeepMarker returns a KitchenSink request v0 whose
// Structs[1].Inner[0].Deep is present, with its presence marker replaced
// by marker, and the marker's offset.
func kitchenSinkDeepMarker(marker byte) ([]byte, int) {
	s := kitchenSink.Request
	elem := s.Child(s.Handle("Structs"))
	inner := elem.Child(elem.Handle("Inner"))
	deep := inner.Child(inner.Handle("Deep"))
	r := protocol.NewRecord(s)
	r.Append(s.Handle("Structs"))
	in := r.Append(s.Handle("Structs")).Append(elem.Handle("Inner"))
	in.Set(inner.Handle("L"), int64(-1))
	in.Set(inner.Handle("Deep"), in.New(inner.Handle("Deep")).Set(deep.Handle("D"), int8(0x77)))
	b, err := r.AppendTo(nil, 0)
	if err != nil {
		panic(err)
	}
	// Deep is the only struct holding 0x77; its marker (01) precedes it.
	at := bytes.Index(b, []byte{0x01, 0x77})
	if at < 0 || bytes.Count(b, []byte{0x01, 0x77}) != 1 {
		panic(fmt.Sprintf("cannot find Deep in %x", b))
	}
	b[at] = marker
	return b, at
}

var deepMarker5, deepMarker5At = kitchenSinkDeepMarker(5)

type hostileCase struct {
	name    string
	schema  *protocol.Schema
	version int16
	input   []byte
	path    string
	offset  int
	reason  []string // substrings the reason must contain
}

var hostileCases = []hostileCase{
	{
		name:   "array count 2^31-1 in a 100-byte message",
		schema: Metadata.Request, version: 0,
		input: append(hexBytes("7fffffff"), bytes.Repeat([]byte("a"), 96)...),
		path:  "Topics", offset: 0,
		reason: []string{"2147483647 elements", "96 bytes left"},
	},
	{
		name:   "nested array count 2^31-1",
		schema: Fetch.Response, version: 4,
		input: append(append(fetch4TwoPartitions[:67:67], hexBytes("7fffffff")...), bytes.Repeat([]byte{0}, 29)...),
		path:  "Responses[0].Partitions[1].AbortedTransactions", offset: 67,
		reason: []string{"2147483647 elements", "at least 16 bytes", "29 bytes left"},
	},
	{
		name:   "compact array count 2^32-1 (2^32-2 elements)",
		schema: Metadata.Request, version: 12,
		input: hexBytes("ffffffff0f", "00", "00", "00"),
		path:  "Topics", offset: 0,
		reason: []string{"4294967294 elements", "3 bytes left"},
	},
	{
		name:   "compact array count beyond 32 bits",
		schema: Metadata.Request, version: 12,
		input: hexBytes("ffffffff1f", "00", "00", "00"),
		path:  "Topics", offset: 0,
		reason: []string{"compact length"},
	},
	{
		name:   "string length beyond the end",
		schema: Metadata.Request, version: 0,
		input: hexBytes("00000001", "0010", str("abc")),
		path:  "Topics[0].Name", offset: 4, // at the length prefix, like array counts
		reason: []string{"length 16", "3 bytes left"},
	},
	{
		name:   "compact string length beyond the end",
		schema: Produce.Request, version: 9,
		input: hexBytes("20", str("txn")),
		path:  "TransactionalId", offset: 0,
		reason: []string{"length 31", "3 bytes left"},
	},
	{
		name:   "negative string length -2",
		schema: Metadata.Request, version: 1,
		input: hexBytes("00000001", "fffe", "00000000"),
		path:  "Topics[0].Name", offset: 4,
		reason: []string{"negative length -2"},
	},
	{
		name:   "negative records length -2",
		schema: Fetch.Response, version: 4,
		input: append(fetch4TwoPartitions[:67:67], hexBytes("00000000", "fffffffe")...),
		path:  "Responses[0].Partitions[1].Records", offset: 71,
		reason: []string{"negative length -2"},
	},
	{
		name:   "negative array count -2",
		schema: Metadata.Request, version: 1,
		input: hexBytes("fffffffe"),
		path:  "Topics", offset: 0,
		reason: []string{"negative length -2"},
	},
	{
		name:   "truncated int64 at the end",
		schema: InitProducerId.Response, version: 0,
		input: hexBytes("00000000", "0000", "0000000001"), // 5 of ProducerId's 8 bytes
		path:  "ProducerId", offset: 6,
		reason: []string{"need 8 bytes, 5 left"},
	},
	{
		name:   "truncated nested int64 at the end",
		schema: Fetch.Response, version: 4,
		input: hexBytes(
			"00000000", "00000001", "0001", str("t"), "00000002",
			// 15: partition 0, with 20 bytes of records so that the
			// partition count passes its bounds check (2 x 30 bytes).
			"00000000", "0000", "0000000000000000", "0000000000000000", "ffffffff",
			"00000014", strings.Repeat("00", 20),
			// 65: partition 1, cut 5 bytes into HighWatermark (71).
			"00000001", "0000", "0000000000",
		),
		path: "Responses[0].Partitions[1].HighWatermark", offset: 71,
		reason: []string{"need 8 bytes, 5 left"},
	},
	{
		name:   "truncated int16 after the last int64",
		schema: InitProducerId.Response, version: 0,
		input: hexBytes("00000000", "0000", "0000000000000001", "00"),
		path:  "ProducerEpoch", offset: 14,
		reason: []string{"need 2 bytes, 1 left"},
	},
	{
		name:   "trailing garbage",
		schema: ApiVersions.Request, version: 3,
		input: hexBytes("06", str("ktape"), "06", str("0.1.0"), "00", str("xyz")),
		path:  "", offset: 13,
		reason: []string{"3 bytes left over"},
	},
	{
		name:   "tags out of order",
		schema: Fetch.Response, version: 12,
		input: fetch12WithPartitionTags(
			"02",                        // 58 two tagged fields
			"01", "09", currentLeader35, // 59 tag 1, size 9
			"00", "0d", "ffffffff ffffffffffffffff 00", // 70 tag 0 after tag 1
		),
		path: "Responses[0].Partitions[0]", offset: 70,
		reason: []string{"tag 0", "out of order", "after tag 1"},
	},
	{
		name:   "duplicated tag",
		schema: Fetch.Response, version: 12,
		input: fetch12WithPartitionTags(
			"02",
			"01", "09", currentLeader35, // 59 tag 1
			"01", "09", currentLeader35, // 70 tag 1 again
		),
		path: "Responses[0].Partitions[0]", offset: 70,
		reason: []string{"duplicate tag 1"},
	},
	{
		name:   "tagged struct shorter than its declared size",
		schema: Fetch.Response, version: 12,
		input: fetch12WithPartitionTags(
			"01",
			"01", "0a", currentLeader35, "00", // size 10, value 9 bytes + 1 stray
		),
		path: "Responses[0].Partitions[0].CurrentLeader", offset: 70,
		reason: []string{"9 bytes", "size says 10"},
	},
	{
		name:   "tagged struct longer than its declared size",
		schema: Fetch.Response, version: 12,
		input: fetch12WithPartitionTags(
			"01",
			"01", "05", currentLeader35, // size 5: LeaderEpoch (at 65) is cut
		),
		path: "Responses[0].Partitions[0].CurrentLeader.LeaderEpoch", offset: 65,
		reason: []string{"need 4 bytes, 1 left"},
	},
	{
		name:   "tag size beyond the end",
		schema: Fetch.Response, version: 12,
		input: append(fetch12Body[:71:71], hexBytes("01", "4d", "64", "abcdef")...),
		path:  "", offset: 74,
		reason: []string{"tag 77", "100 bytes", "3 left"},
	},
	{
		name:   "tag count with too many continuation bytes",
		schema: Fetch.Response, version: 12,
		input: append(fetch12Body[:71:71], hexBytes("808080808000")...),
		path:  "", offset: 71,
		reason: []string{"tag count"},
	},
	{
		name:   "compact length with too many continuation bytes",
		schema: ApiVersions.Request, version: 3,
		input: hexBytes("80808080808001", "00", "00"),
		path:  "ClientSoftwareName", offset: 0,
		reason: []string{"compact length"},
	},
	{
		name:   "varint with too many continuation bytes",
		schema: kitchenSink.Request, version: 0,
		input: append(kitchenSinkV0Prefix[:46:46], hexBytes("80808080808080808080", "01")...),
		path:  "Varint", offset: 46,
		reason: []string{"varint overflows"},
	},
	{
		name:   "varint beyond 32 bits",
		schema: kitchenSink.Request, version: 0,
		input: append(kitchenSinkV0Prefix[:46:46], hexBytes("8080808010")...),
		path:  "Varint", offset: 46,
		reason: []string{"varint overflows"},
	},
	{
		name:   "truncated varint",
		schema: kitchenSink.Request, version: 0,
		input: append(kitchenSinkV0Prefix[:46:46], hexBytes("8080")...),
		path:  "Varint", offset: 46,
		reason: []string{"truncated varint"},
	},
	{
		name:   "nullable struct marker 5",
		schema: kitchenSink.Request, version: 0,
		input: append(kitchenSinkV0UpToNullableStruct[:68:68], hexBytes("05", "00", "00000000")...),
		path:  "NullableStruct", offset: 68,
		reason: []string{"presence marker 5"},
	},
	{
		name:   "nested nullable struct marker 5",
		schema: kitchenSink.Request, version: 0,
		input: deepMarker5,
		path:  "Structs[1].Inner[0].Deep", offset: deepMarker5At,
		reason: []string{"presence marker 5"},
	},
}

func TestHostileInput(t *testing.T) {
	for _, c := range hostileCases {
		t.Run(c.name, func(t *testing.T) {
			var d protocol.Decoder
			_, err := d.Decode(c.schema, c.version, c.input)
			checkHostileError(t, c, err)
			t.Log(err)
			_, err = protocol.Decode(c.schema, c.version, c.input)
			checkHostileError(t, c, err)

			// No allocation sized by the claimed counts: a fresh Decoder
			// (its index, sized by the input's real bytes) and the error
			// with its path stay under 4 KiB, race detector included.
			if n := allocBytes(func() {
				var d protocol.Decoder
				d.Decode(c.schema, c.version, c.input)
			}); n >= 4096 {
				t.Errorf("decoding %d bytes allocated %d bytes", len(c.input), n)
			}
		})
	}
}

func checkHostileError(t *testing.T, c hostileCase, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%x decoded without error", c.input)
	}
	de, ok := err.(*protocol.DecodeError)
	if !ok {
		t.Fatalf("error is a %T, not a *protocol.DecodeError: %v", err, err)
	}
	if de.Schema != c.schema.Name() || de.Version != c.version {
		t.Errorf("error names %s v%d, want %s v%d", de.Schema, de.Version, c.schema.Name(), c.version)
	}
	if de.Path != c.path {
		t.Errorf("Path %q, want %q (%v)", de.Path, c.path, err)
	}
	if de.Offset != c.offset {
		t.Errorf("Offset %d, want %d (%v)", de.Offset, c.offset, err)
	}
	for _, r := range c.reason {
		if !strings.Contains(de.Reason, r) {
			t.Errorf("Reason %q does not say %q", de.Reason, r)
		}
	}
	msg := err.Error()
	for _, want := range []string{c.schema.Name(), fmt.Sprintf("v%d", c.version), fmt.Sprintf("byte %d", c.offset)} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	if c.path != "" && !strings.Contains(msg, c.path) {
		t.Errorf("message %q does not contain the path %q", msg, c.path)
	}
}

// allocBytes returns the bytes allocated by one call of f, averaged over
// several. The test must not run in parallel with others.
func allocBytes(f func()) uint64 {
	const runs = 20
	f() // warm up: pools, lazily built tables
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < runs; i++ {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

// TestHugeCountAllocations: a 100-byte input claiming 2^31-1 elements
// costs a few small allocations (the error), not 2^31 of anything.
func TestHugeCountAllocations(t *testing.T) {
	input := append(hexBytes("7fffffff"), bytes.Repeat([]byte{0}, 96)...)
	for _, c := range []struct {
		name   string
		decode func()
	}{
		{"Decoder", func() {
			var d protocol.Decoder
			d.Decode(Metadata.Request, 0, input)
		}},
		{"Decode", func() { protocol.Decode(Metadata.Request, 0, input) }},
	} {
		if n := allocBytes(c.decode); n >= 1024 {
			t.Errorf("%s: a 100-byte input claiming 2^31-1 elements allocated %d bytes", c.name, n)
		}
		if n := testing.AllocsPerRun(20, c.decode); n > 10 {
			t.Errorf("%s: %v allocations", c.name, n)
		}
	}
}

// TestEveryTruncation decodes every strict prefix of one random message of
// every API, version and direction: each must fail with a DecodeError
// inside the prefix, or decode (a few prefixes are valid messages), and
// never panic.
func TestEveryTruncation(t *testing.T) {
	for _, a := range append(All[:len(All):len(All)], kitchenSink) {
		for _, request := range []bool{true, false} {
			s := schemaOf(a, request)
			rng := rand.New(rand.NewSource(int64(a.Key)))
			for v := a.MinVersion; v <= a.MaxVersion; v++ {
				var b []byte
				if a == kitchenSink {
					var err error
					if b, err = randomRecord(s, v, rng, 0).AppendTo(nil, v); err != nil {
						t.Fatal(err)
					}
				} else {
					m := kmsgFor(a.Key, request)
					fillKmsg(reflect.ValueOf(m).Elem(), rng, true)
					m.SetVersion(v)
					b = m.AppendTo(nil)
				}
				var d protocol.Decoder
				for n := 0; n < len(b); n++ {
					prefix := b[:n:n]
					_, err := d.Decode(s, v, prefix)
					if err == nil {
						continue
					}
					de, ok := err.(*protocol.DecodeError)
					if !ok {
						t.Fatalf("%s v%d, %d of %d bytes: %T %v", s.Name(), v, n, len(b), err, err)
					}
					if de.Offset < 0 || de.Offset > n || de.Reason == "" {
						t.Fatalf("%s v%d, %d of %d bytes: %v", s.Name(), v, n, len(b), err)
					}
				}
			}
		}
	}
}

// TestDecodeNullInNonNullableField: whatever decodes re-encodes, including
// a null in a string or bytes field that is not nullable, which the decoder
// accepts on purpose (some brokers send it; views read it as empty).
//
// Regression test for an engine bug FuzzDecode found in 14 s
// (testdata/fuzz/FuzzDecode/61c269ba3664c815, a ProduceResponse v3 with
// null topic names): View.Record copied the null into the Record as nil,
// and AppendTo refused that nil with "null, but the field is not nullable
// in this version". Fixed in 6181703 (AppendTo writes such a null as
// empty).
func TestDecodeNullInNonNullableField(t *testing.T) {
	for _, c := range []struct {
		name   string
		schema *protocol.Schema
		v      int16
		input  []byte
	}{
		// MetadataRequest v0: Topics [1] { Name null }.
		{"string", Metadata.Request, 0, hexBytes("00000001", "ffff")},
		// SaslAuthenticateRequest v0: AuthBytes null.
		{"bytes", SaslAuthenticate.Request, 0, hexBytes("ffffffff")},
		// ApiVersionsRequest v3: ClientSoftwareName null (compact 00).
		{"compact string", ApiVersions.Request, 3, hexBytes("00", "01", "00")},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := protocol.Decode(c.schema, c.v, c.input)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if _, err := r.AppendTo(nil, c.v); err != nil {
				t.Errorf("%x decodes, but the Record does not re-encode: %v", c.input, err)
			}
		})
	}
}

// TestDefaultRecordEncodes: a Record fresh from NewRecord, every field at
// its default, must encode at every version.
//
// Regression test for an engine bug found while writing these tests: the
// default of a bytes field without a declared default, and of a string
// field nullable only in later versions, is nil (null), and AppendTo used
// to refuse nil where the version being encoded cannot say null. So
// NewRecord(api.SaslAuthenticate.Request).AppendTo(nil, 0) failed with
// "AuthBytes: null, but the field is not nullable in this version", as did
// JoinGroupResponse v0-v6 (ProtocolName, nullable from v7) and
// SyncGroupResponse (Assignment). Fixed in 6181703.
func TestDefaultRecordEncodes(t *testing.T) {
	for _, a := range append(All[:len(All):len(All)], kitchenSink) {
		for _, request := range []bool{true, false} {
			s := schemaOf(a, request)
			for v := a.MinVersion; v <= a.MaxVersion; v++ {
				r := protocol.NewRecord(s)
				b, err := r.AppendTo(nil, v)
				if err != nil {
					t.Errorf("NewRecord(%s).AppendTo(nil, %d): %v", s.Name(), v, err)
					continue
				}
				if n := r.Size(v); n != len(b) {
					t.Errorf("%s v%d: Size %d, encoded %d bytes", s.Name(), v, n, len(b))
				}
				if _, err := protocol.Decode(s, v, b); err != nil {
					t.Errorf("%s v%d: a default Record encodes to %x, which does not decode: %v", s.Name(), v, b, err)
				}
			}
		}
	}
}

// TestNonMinimalCompactNull: a compact length may be a non-minimal varint;
// 0x80 0x00 is 0, i.e. null, in two bytes. kmsg and binary.Uvarint read it
// so.
//
// Regression test for an engine bug found by reading the walk and then by
// FuzzDecode with its kmsg cross-check (testdata/fuzz/FuzzDecode/
// 251f0fbe9008fab1, a CreatePartitionsResponse v3, and
// metadata-v12-compact-null-80-00): the walk's fast path for one- and
// two-byte compact lengths computed n = ((b[0]&0x7f) | b[1]<<7) - 1 = -1
// for 0x80 0x00, accepted it because -1 <= len(b)-2, and advanced by k+n =
// 1 byte instead of 2. Every later field was read one byte early: the valid
// message below was rejected ("1 bytes left over"), and the invalid one, a
// byte shorter, accepted with shifted values (AllowAutoTopicCreation false,
// IncludeTopicAuthorizedOperations true). Fixed in b31205f (n >= 0).
func TestNonMinimalCompactNull(t *testing.T) {
	id := "00112233445566778899aabbccddeeff"
	valid := hexBytes(
		"02",   // Topics: 1
		id,     //   [0].TopicId
		"8000", //   [0].Name: compact length 0 in two bytes: null
		"00",   //   [0] tag section
		"01",   // AllowAutoTopicCreation true
		"00",   // IncludeTopicAuthorizedOperations false
		"00",   // tag section
	)
	s := Metadata.Request
	r, err := protocol.Decode(s, 12, valid)
	if err != nil {
		t.Errorf("%x: %v", valid, err)
	} else {
		topic := r.Elems(s.Handle("Topics"))[0]
		if topic.Get(s.Child(s.Handle("Topics")).Handle("Name")) != nil ||
			r.Get(s.Handle("AllowAutoTopicCreation")) != true ||
			r.Get(s.Handle("IncludeTopicAuthorizedOperations")) != false {
			t.Errorf("%x read as %s", valid, dumpRecord(r, 12, true))
		}
	}
	truncated := valid[:len(valid)-1]
	if _, err := protocol.Decode(s, 12, truncated); err == nil {
		t.Errorf("%x (one byte short) decodes", truncated)
	}
}

// taggedNullable declares the two ways of writing a nullable tagged
// struct. No Kafka API declared in this package has one yet; the schema
// language allows it.
var taggedNullable = protocol.NewAPI(protocol.APIDef{
	Key: 0xfe, Name: "TaggedNullable", MinVersion: 0, MaxVersion: 0, FlexibleVersion: 0,
	Request: []protocol.Field{
		protocol.Struct("NoDefault", protocol.Int32("X")).Nullable().Tag(0),
		protocol.Struct("NullDefault", protocol.Int32("X")).Nullable().Default(nil).Tag(1),
	},
})

// TestTaggedNullableStruct: a nullable tagged struct that is not sent is
// null, through the view and the Record alike; one that is sent, even with
// every field at its default, stays present through AppendTo and Decode.
//
// Regression test for two latent engine bugs (no declared API has a
// nullable tagged struct yet), both fixed in b31205f:
//  1. For NoDefault (Nullable().Tag(0), no Default), not sent, View.IsNull
//     said false and View.Struct ok=true (view.go isNullDefault wanted an
//     explicit Default(nil)), while the Record held nil, which the encoder
//     writes as null: view and Record disagreed on the same message.
//  2. For both, a present struct whose fields are all defaults was dropped
//     by AppendTo (encode.go isDefault compared the fields only), so it
//     read back as null: NewRecord(s).Set(h, NewRecord(child)) encoded to
//     00, an empty tag section.
func TestTaggedNullableStruct(t *testing.T) {
	s := taggedNullable.Request
	for _, name := range []string{"NoDefault", "NullDefault"} {
		t.Run(name, func(t *testing.T) {
			h := s.Handle(name)
			var d protocol.Decoder
			v, err := d.Decode(s, 0, []byte{0x00}) // empty tag section
			if err != nil {
				t.Fatal(err)
			}
			rec, _ := protocol.Decode(s, 0, []byte{0x00})
			if _, ok := v.Struct(h); ok || !v.IsNull(h) || rec.Get(h) != nil {
				t.Errorf("not sent: View.IsNull %v, View.Struct ok %v, Record %v; want null everywhere",
					v.IsNull(h), ok, rec.Get(h))
			}

			r := protocol.NewRecord(s)
			r.Set(h, r.New(h))
			b, err := r.AppendTo(nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			back, err := protocol.Decode(s, 0, b)
			if err != nil {
				t.Fatal(err)
			}
			if back.Get(h) == nil {
				t.Errorf("a present %s with default fields encodes to %x and reads back as null", name, b)
			}
		})
	}
}
