package api

// Golden messages: bytes written out by hand from the Kafka protocol guide
// (https://kafka.apache.org/protocol) and the JSON message specs, one
// annotated line per field. Each is checked four ways: the same message
// built as a Record encodes to exactly these bytes; decoding the bytes
// reads the expected values through the View accessors and through the
// Record; the decoded Record re-encodes to the same bytes; and franz-go's
// kmsg, an independent implementation, reads the same values and writes
// the same bytes.
//
// Encodings used below (classic versions / flexible versions):
//   string          int16 length, bytes      / uvarint length+1, bytes
//   nullable string -1 (ff ff) for null        / 00 for null
//   bytes, records  int32 length, bytes      / uvarint length+1, bytes
//   array           int32 count, elements    / uvarint count+1, elements
//   nullable array  -1 (ff ff ff ff) for null  / 00 for null
//   tag section     (none)                   / uvarint count, then per
//                                              field: uvarint tag, uvarint
//                                              size, value

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/ktape/ktape/protocol"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// hexBytes joins hex fragments, ignoring spaces: golden messages are
// written one field per line.
func hexBytes(fragments ...string) []byte {
	var out []byte
	for _, f := range fragments {
		f = strings.ReplaceAll(f, " ", "")
		for i := 0; i < len(f); i += 2 {
			b, err := strconv.ParseUint(f[i:i+2], 16, 8)
			if err != nil {
				panic(fmt.Sprintf("bad hex %q: %v", f, err))
			}
			out = append(out, byte(b))
		}
	}
	return out
}

// str is a string's bytes as hex, so that names read as names below.
func str(s string) string { return fmt.Sprintf("%x", s) }

// goldenNull and goldenLen are expected values for a null field and for
// an array's length.
type (
	goldenNullT struct{}
	goldenLen   int
)

var goldenNull goldenNullT

type goldenCase struct {
	name    string
	schema  *protocol.Schema
	version int16
	wire    []byte
	// build makes the same message as a Record.
	build func() *protocol.Record
	// built is what build encodes to, when it differs from wire (a Record
	// cannot be given unknown tags except by decoding them).
	built []byte
	// want maps field paths ("Responses[0].Partitions[0].Records") to the
	// values decoding must read: Go values of the Record's types,
	// goldenNull, or goldenLen for arrays.
	want map[string]any
	// checkKmsg checks the message as kmsg read it.
	checkKmsg func(t *testing.T, m kmsgMessage)
}

var uuid1 = [16]byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}

var goldenCases = []goldenCase{
	{
		name: "ApiVersionsRequest v3", schema: ApiVersions.Request, version: 3,
		wire: hexBytes(
			"06", str("ktape"), // ClientSoftwareName: compact string, length 5+1
			"06", str("0.1.0"), // ClientSoftwareVersion: compact string, length 5+1
			"00", // tag section: no tagged fields
		),
		build: func() *protocol.Record {
			s := ApiVersions.Request
			return protocol.NewRecord(s).
				Set(s.Handle("ClientSoftwareName"), "ktape").
				Set(s.Handle("ClientSoftwareVersion"), "0.1.0")
		},
		want: map[string]any{
			"ClientSoftwareName":    "ktape",
			"ClientSoftwareVersion": "0.1.0",
		},
		checkKmsg: func(t *testing.T, m kmsgMessage) {
			r := m.(*kmsg.ApiVersionsRequest)
			if r.ClientSoftwareName != "ktape" || r.ClientSoftwareVersion != "0.1.0" || r.UnknownTags.Len() != 0 {
				t.Errorf("kmsg read %+v", r)
			}
		},
	},
	{
		name: "ApiVersionsResponse v0", schema: ApiVersions.Response, version: 0,
		wire: hexBytes(
			"0000",     // ErrorCode 0
			"00000002", // ApiKeys: int32 count 2
			"0000",     //   [0].ApiKey 0 (Produce)
			"0003",     //   [0].MinVersion 3
			"0009",     //   [0].MaxVersion 9
			"0012",     //   [1].ApiKey 18 (ApiVersions)
			"0000",     //   [1].MinVersion 0
			"0003",     //   [1].MaxVersion 3
			// v0 has no ThrottleTimeMs and no tag section.
		),
		build: func() *protocol.Record {
			s := ApiVersions.Response
			r := protocol.NewRecord(s).Set(s.Handle("ErrorCode"), int16(0))
			keys := s.Child(s.Handle("ApiKeys"))
			for _, k := range [][3]int16{{0, 3, 9}, {18, 0, 3}} {
				r.Append(s.Handle("ApiKeys")).
					Set(keys.Handle("ApiKey"), k[0]).
					Set(keys.Handle("MinVersion"), k[1]).
					Set(keys.Handle("MaxVersion"), k[2])
			}
			return r
		},
		want: map[string]any{
			"ErrorCode":             int16(0),
			"ApiKeys":               goldenLen(2),
			"ApiKeys[0].ApiKey":     int16(0),
			"ApiKeys[0].MinVersion": int16(3),
			"ApiKeys[0].MaxVersion": int16(9),
			"ApiKeys[1].ApiKey":     int16(18),
			"ApiKeys[1].MinVersion": int16(0),
			"ApiKeys[1].MaxVersion": int16(3),
			"ThrottleTimeMs":        int32(0), // not in v0: the default
		},
		checkKmsg: func(t *testing.T, m kmsgMessage) {
			r := m.(*kmsg.ApiVersionsResponse)
			want := []kmsg.ApiVersionsResponseApiKey{{ApiKey: 0, MinVersion: 3, MaxVersion: 9}, {ApiKey: 18, MinVersion: 0, MaxVersion: 3}}
			if r.ErrorCode != 0 || !reflect.DeepEqual(r.ApiKeys, want) {
				t.Errorf("kmsg read %+v", r)
			}
		},
	},
	{
		name: "ApiVersionsResponse v3 with a tagged FinalizedFeaturesEpoch", schema: ApiVersions.Response, version: 3,
		wire: hexBytes(
			"0023",                 // ErrorCode 35 (UNSUPPORTED_VERSION)
			"02",                   // ApiKeys: compact array, 1+1
			"0012", "0000", "0004", //   [0] ApiKey 18, MinVersion 0, MaxVersion 4
			"00",               //   [0] tag section: empty
			"00000064",         // ThrottleTimeMs 100
			"01",               // tag section: 1 field
			"01",               //   tag 1: FinalizedFeaturesEpoch
			"08",               //   size 8
			"0000000000000005", //   int64 5
		),
		build: func() *protocol.Record {
			s := ApiVersions.Response
			keys := s.Child(s.Handle("ApiKeys"))
			r := protocol.NewRecord(s).
				Set(s.Handle("ErrorCode"), int16(35)).
				Set(s.Handle("ThrottleTimeMs"), int32(100)).
				Set(s.Handle("FinalizedFeaturesEpoch"), int64(5))
			r.Append(s.Handle("ApiKeys")).
				Set(keys.Handle("ApiKey"), int16(18)).
				Set(keys.Handle("MaxVersion"), int16(4))
			return r
		},
		want: map[string]any{
			"ErrorCode":              int16(35),
			"ApiKeys":                goldenLen(1),
			"ApiKeys[0].ApiKey":      int16(18),
			"ApiKeys[0].MaxVersion":  int16(4),
			"ThrottleTimeMs":         int32(100),
			"FinalizedFeaturesEpoch": int64(5),
			"SupportedFeatures":      goldenLen(0), // tag 0 not sent
			"ZkMigrationReady":       false,        // tag 3 not sent
		},
		checkKmsg: func(t *testing.T, m kmsgMessage) {
			r := m.(*kmsg.ApiVersionsResponse)
			if r.ErrorCode != 35 || len(r.ApiKeys) != 1 || r.ApiKeys[0].ApiKey != 18 || r.ApiKeys[0].MaxVersion != 4 ||
				r.ThrottleMillis != 100 || r.FinalizedFeaturesEpoch != 5 || len(r.SupportedFeatures) != 0 {
				t.Errorf("kmsg read %+v", r)
			}
		},
	},
	{
		name: "MetadataRequest v0 with two topics", schema: Metadata.Request, version: 0,
		wire: hexBytes(
			"00000002",         // Topics: int32 count 2
			"0003", str("foo"), //   [0].Name: int16 length 3, "foo"
			"0003", str("bar"), //   [1].Name: int16 length 3, "bar"
			// v0 has no AllowAutoTopicCreation (v4+) and no tag section.
		),
		build: func() *protocol.Record {
			s := Metadata.Request
			topic := s.Child(s.Handle("Topics"))
			r := protocol.NewRecord(s)
			r.Append(s.Handle("Topics")).Set(topic.Handle("Name"), "foo")
			r.Append(s.Handle("Topics")).Set(topic.Handle("Name"), "bar")
			return r
		},
		want: map[string]any{
			"Topics":         goldenLen(2),
			"Topics[0].Name": "foo",
			"Topics[1].Name": "bar",
		},
		checkKmsg: func(t *testing.T, m kmsgMessage) {
			r := m.(*kmsg.MetadataRequest)
			if len(r.Topics) != 2 || r.Topics[0].Topic == nil || *r.Topics[0].Topic != "foo" ||
				r.Topics[1].Topic == nil || *r.Topics[1].Topic != "bar" {
				t.Errorf("kmsg read %+v", r)
			}
		},
	},
	{
		name: "MetadataRequest v12 for every topic", schema: Metadata.Request, version: 12,
		wire: hexBytes(
			"00", // Topics: compact nullable array, null: every topic
			"01", // AllowAutoTopicCreation true
			"00", // IncludeTopicAuthorizedOperations false
			"00", // tag section: empty
			// IncludeClusterAuthorizedOperations was removed in v11.
		),
		build: func() *protocol.Record {
			s := Metadata.Request
			return protocol.NewRecord(s).
				Set(s.Handle("Topics"), nil).
				Set(s.Handle("AllowAutoTopicCreation"), true).
				Set(s.Handle("IncludeTopicAuthorizedOperations"), false)
		},
		want: map[string]any{
			"Topics":                           goldenNull,
			"AllowAutoTopicCreation":           true,
			"IncludeTopicAuthorizedOperations": false,
		},
		checkKmsg: func(t *testing.T, m kmsgMessage) {
			r := m.(*kmsg.MetadataRequest)
			if r.Topics != nil || !r.AllowAutoTopicCreation || r.IncludeTopicAuthorizedOperations {
				t.Errorf("kmsg read %+v", r)
			}
		},
	},
	{
		name: "MetadataRequest v12 for one topic id", schema: Metadata.Request, version: 12,
		wire: hexBytes(
			"02",                               // Topics: compact array, 1+1
			"00112233445566778899aabbccddeeff", //   [0].TopicId
			"00",                               //   [0].Name: compact nullable string, null
			"00",                               //   [0] tag section: empty
			"00",                               // AllowAutoTopicCreation false
			"01",                               // IncludeTopicAuthorizedOperations true
			"00",                               // tag section: empty
		),
		build: func() *protocol.Record {
			s := Metadata.Request
			topic := s.Child(s.Handle("Topics"))
			r := protocol.NewRecord(s).
				Set(s.Handle("AllowAutoTopicCreation"), false).
				Set(s.Handle("IncludeTopicAuthorizedOperations"), true)
			r.Append(s.Handle("Topics")).
				Set(topic.Handle("TopicId"), uuid1).
				Set(topic.Handle("Name"), nil)
			return r
		},
		want: map[string]any{
			"Topics":                           goldenLen(1),
			"Topics[0].TopicId":                uuid1,
			"Topics[0].Name":                   goldenNull,
			"AllowAutoTopicCreation":           false,
			"IncludeTopicAuthorizedOperations": true,
		},
		checkKmsg: func(t *testing.T, m kmsgMessage) {
			r := m.(*kmsg.MetadataRequest)
			if len(r.Topics) != 1 || r.Topics[0].TopicID != uuid1 || r.Topics[0].Topic != nil ||
				r.AllowAutoTopicCreation || !r.IncludeTopicAuthorizedOperations {
				t.Errorf("kmsg read %+v", r)
			}
		},
	},
	{
		name: "FetchResponse v4 with an aborted transaction", schema: Fetch.Response, version: 4,
		wire: hexBytes(
			"00000064",            // ThrottleTimeMs 100
			"00000001",            // Responses: int32 count 1
			"0006", str("events"), //   [0].Topic: int16 length 6, "events"
			"00000001",         //   [0].Partitions: int32 count 1
			"00000002",         //     [0].PartitionIndex 2
			"0000",             //     [0].ErrorCode 0
			"0000000000000100", //     [0].HighWatermark 256
			"00000000000000f0", //     [0].LastStableOffset 240
			// LogStartOffset is v5+.
			"00000001",         //     [0].AbortedTransactions: int32 count 1
			"0000000000003039", //       [0].ProducerId 12345
			"00000000000000f5", //       [0].FirstOffset 245
			// PreferredReadReplica is v11+.
			"00000003", "c0ffee", //   [0].Records: int32 length 3, 3 opaque bytes
		),
		build: func() *protocol.Record {
			s := Fetch.Response
			topic := s.Child(s.Handle("Responses"))
			part := topic.Child(topic.Handle("Partitions"))
			aborted := part.Child(part.Handle("AbortedTransactions"))
			r := protocol.NewRecord(s).Set(s.Handle("ThrottleTimeMs"), int32(100))
			t := r.Append(s.Handle("Responses")).Set(topic.Handle("Topic"), "events")
			p := t.Append(topic.Handle("Partitions")).
				Set(part.Handle("PartitionIndex"), int32(2)).
				Set(part.Handle("HighWatermark"), int64(256)).
				Set(part.Handle("LastStableOffset"), int64(240)).
				Set(part.Handle("Records"), []byte{0xc0, 0xff, 0xee})
			p.Append(part.Handle("AbortedTransactions")).
				Set(aborted.Handle("ProducerId"), int64(12345)).
				Set(aborted.Handle("FirstOffset"), int64(245))
			return r
		},
		want: map[string]any{
			"ThrottleTimeMs":          int32(100),
			"ErrorCode":               int16(0), // v7+: default
			"Responses":               goldenLen(1),
			"Responses[0].Topic":      "events",
			"Responses[0].Partitions": goldenLen(1),
			"Responses[0].Partitions[0].PartitionIndex":                     int32(2),
			"Responses[0].Partitions[0].ErrorCode":                          int16(0),
			"Responses[0].Partitions[0].HighWatermark":                      int64(256),
			"Responses[0].Partitions[0].LastStableOffset":                   int64(240),
			"Responses[0].Partitions[0].LogStartOffset":                     int64(-1), // v5+: default
			"Responses[0].Partitions[0].AbortedTransactions":                goldenLen(1),
			"Responses[0].Partitions[0].AbortedTransactions[0].ProducerId":  int64(12345),
			"Responses[0].Partitions[0].AbortedTransactions[0].FirstOffset": int64(245),
			"Responses[0].Partitions[0].PreferredReadReplica":               int32(-1), // v11+: default
			"Responses[0].Partitions[0].Records":                            []byte{0xc0, 0xff, 0xee},
		},
		checkKmsg: func(t *testing.T, m kmsgMessage) {
			r := m.(*kmsg.FetchResponse)
			if r.ThrottleMillis != 100 || len(r.Topics) != 1 || r.Topics[0].Topic != "events" || len(r.Topics[0].Partitions) != 1 {
				t.Fatalf("kmsg read %+v", r)
			}
			p := r.Topics[0].Partitions[0]
			if p.Partition != 2 || p.ErrorCode != 0 || p.HighWatermark != 256 || p.LastStableOffset != 240 ||
				len(p.AbortedTransactions) != 1 || p.AbortedTransactions[0].ProducerID != 12345 ||
				p.AbortedTransactions[0].FirstOffset != 245 || !bytes.Equal(p.RecordBatches, []byte{0xc0, 0xff, 0xee}) {
				t.Errorf("kmsg read partition %+v", p)
			}
		},
	},
	{
		name: "ProduceRequest v9 without a transactional id", schema: Produce.Request, version: 9,
		wire: hexBytes(
			"00",                // TransactionalId: compact nullable string, null
			"ffff",              // Acks -1 (all in-sync replicas)
			"00007530",          // TimeoutMs 30000
			"02",                // TopicData: compact array, 1+1
			"07", str("events"), //   [0].Name: compact string, length 6+1
			"02",           //   [0].PartitionData: compact array, 1+1
			"00000001",     //     [0].Index 1
			"04", "0a0b0c", //   [0].Records: compact bytes, length 3+1; opaque
			"00", //           [0] partition tag section: empty
			"00", //         [0] topic tag section: empty
			"00", //       tag section: empty
		),
		build: func() *protocol.Record {
			s := Produce.Request
			topic := s.Child(s.Handle("TopicData"))
			part := topic.Child(topic.Handle("PartitionData"))
			r := protocol.NewRecord(s).
				Set(s.Handle("TransactionalId"), nil).
				Set(s.Handle("Acks"), int16(-1)).
				Set(s.Handle("TimeoutMs"), int32(30000))
			r.Append(s.Handle("TopicData")).Set(topic.Handle("Name"), "events").
				Append(topic.Handle("PartitionData")).
				Set(part.Handle("Index"), int32(1)).
				Set(part.Handle("Records"), []byte{0x0a, 0x0b, 0x0c})
			return r
		},
		want: map[string]any{
			"TransactionalId":                       goldenNull,
			"Acks":                                  int16(-1),
			"TimeoutMs":                             int32(30000),
			"TopicData":                             goldenLen(1),
			"TopicData[0].Name":                     "events",
			"TopicData[0].PartitionData":            goldenLen(1),
			"TopicData[0].PartitionData[0].Index":   int32(1),
			"TopicData[0].PartitionData[0].Records": []byte{0x0a, 0x0b, 0x0c},
		},
		checkKmsg: func(t *testing.T, m kmsgMessage) {
			r := m.(*kmsg.ProduceRequest)
			if r.TransactionID != nil || r.Acks != -1 || r.TimeoutMillis != 30000 || len(r.Topics) != 1 ||
				r.Topics[0].Topic != "events" || len(r.Topics[0].Partitions) != 1 ||
				r.Topics[0].Partitions[0].Partition != 1 || !bytes.Equal(r.Topics[0].Partitions[0].Records, []byte{0x0a, 0x0b, 0x0c}) {
				t.Errorf("kmsg read %+v", r)
			}
		},
	},
	{
		name: "FetchResponse v12 with a tagged CurrentLeader and an unknown tag", schema: Fetch.Response, version: 12,
		wire: append(fetch12Body[:len(fetch12Body):len(fetch12Body)], hexBytes(
			"01",     // tag section: 1 field
			"4d",     //   tag 77: unknown to this version
			"03",     //   size 3
			"abcdef", //   opaque value, kept and re-encoded
		)...),
		// A Record cannot be given unknown tags except by decoding them:
		// built by hand, the message ends with an empty tag section.
		built: append(fetch12Body[:len(fetch12Body):len(fetch12Body)], 0x00),
		build: func() *protocol.Record {
			s := Fetch.Response
			topic := s.Child(s.Handle("Responses"))
			part := topic.Child(topic.Handle("Partitions"))
			r := protocol.NewRecord(s).Set(s.Handle("SessionId"), int32(42))
			p := r.Append(s.Handle("Responses")).Set(topic.Handle("Topic"), "events").
				Append(topic.Handle("Partitions")).
				Set(part.Handle("HighWatermark"), int64(100)).
				Set(part.Handle("LastStableOffset"), int64(100)).
				Set(part.Handle("LogStartOffset"), int64(0)).
				Set(part.Handle("AbortedTransactions"), nil).
				Set(part.Handle("Records"), []byte{1, 2, 3})
			leader := part.Child(part.Handle("CurrentLeader"))
			p.Set(part.Handle("CurrentLeader"), p.New(part.Handle("CurrentLeader")).
				Set(leader.Handle("LeaderId"), int32(3)).
				Set(leader.Handle("LeaderEpoch"), int32(5)))
			return r
		},
		want: map[string]any{
			"SessionId":          int32(42),
			"Responses[0].Topic": "events",
			"Responses[0].Partitions[0].HighWatermark":             int64(100),
			"Responses[0].Partitions[0].LogStartOffset":            int64(0),
			"Responses[0].Partitions[0].AbortedTransactions":       goldenNull,
			"Responses[0].Partitions[0].PreferredReadReplica":      int32(-1),
			"Responses[0].Partitions[0].Records":                   []byte{1, 2, 3},
			"Responses[0].Partitions[0].CurrentLeader.LeaderId":    int32(3),
			"Responses[0].Partitions[0].CurrentLeader.LeaderEpoch": int32(5),
			"Responses[0].Partitions[0].DivergingEpoch.Epoch":      int32(-1), // tag 0 not sent: default
			"Responses[0].Partitions[0].SnapshotId.EndOffset":      int64(-1), // tag 2 not sent: default
		},
		checkKmsg: func(t *testing.T, m kmsgMessage) {
			r := m.(*kmsg.FetchResponse)
			if r.SessionID != 42 || len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
				t.Fatalf("kmsg read %+v", r)
			}
			p := r.Topics[0].Partitions[0]
			if p.CurrentLeader.LeaderID != 3 || p.CurrentLeader.LeaderEpoch != 5 || p.HighWatermark != 100 ||
				p.AbortedTransactions != nil || p.PreferredReadReplica != -1 || !bytes.Equal(p.RecordBatches, []byte{1, 2, 3}) {
				t.Errorf("kmsg read partition %+v", p)
			}
			var tags []string
			r.UnknownTags.Each(func(tag uint32, b []byte) { tags = append(tags, fmt.Sprintf("%d:%x", tag, b)) })
			if len(tags) != 1 || tags[0] != "77:abcdef" {
				t.Errorf("kmsg unknown tags %v, want [77:abcdef]", tags)
			}
		},
	},
}

// fetch12Body is a FetchResponse v12 up to its top-level tag section.
var fetch12Body = hexBytes(
	"00000000",          // ThrottleTimeMs 0
	"0000",              // ErrorCode 0
	"0000002a",          // SessionId 42
	"02",                // Responses: compact array, 1+1
	"07", str("events"), // [0].Topic: compact string, length 6+1
	"02",               //   [0].Partitions: compact array, 1+1
	"00000000",         //     [0].PartitionIndex 0
	"0000",             //     [0].ErrorCode 0
	"0000000000000064", //     [0].HighWatermark 100
	"0000000000000064", //     [0].LastStableOffset 100
	"0000000000000000", //     [0].LogStartOffset 0
	"00",               //     [0].AbortedTransactions: compact nullable array, null
	"ffffffff",         //     [0].PreferredReadReplica -1
	"04", "010203",     //     [0].Records: compact bytes, length 3+1
	"01",       //     [0] tag section: 1 field
	"01",       //       tag 1: CurrentLeader
	"09",       //       size 9
	"00000003", //         LeaderId 3
	"00000005", //         LeaderEpoch 5
	"00",       //         CurrentLeader's own tag section: empty
	"00",       //   [0] topic tag section: empty
)

func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			v := c.version
			// 1. Built by hand, the Record encodes to the golden bytes.
			want := c.wire
			if c.built != nil {
				want = c.built
			}
			r := c.build()
			got, err := r.AppendTo(nil, v)
			if err != nil {
				t.Fatalf("AppendTo: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("AppendTo:\n got %x\nwant %x", got, want)
			}
			if n := r.Size(v); n != len(want) {
				t.Errorf("Size %d, want %d", n, len(want))
			}

			// 2. Decoded, the golden bytes read the expected values through
			// the Record and through the view.
			rec, err := protocol.Decode(c.schema, v, c.wire)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			var d protocol.Decoder
			view, err := d.Decode(c.schema, v, c.wire)
			if err != nil {
				t.Fatalf("Decoder.Decode: %v", err)
			}
			for path, w := range c.want {
				if g := goldenRecordAt(t, rec, v, path); !reflect.DeepEqual(g, w) {
					t.Errorf("Record %s = %#v, want %#v", path, g, w)
				}
				if g := goldenViewAt(t, view, path); !reflect.DeepEqual(g, w) {
					t.Errorf("View %s = %#v, want %#v", path, g, w)
				}
			}

			// 3. The decoded Record re-encodes to the golden bytes, unknown
			// tags included.
			again, err := rec.AppendTo(nil, v)
			if err != nil || !bytes.Equal(again, c.wire) {
				t.Errorf("decoded Record re-encodes to %x (%v), want %x", again, err, c.wire)
			}

			// 4. kmsg reads the same values and writes the same bytes.
			m := kmsgFor(c.schema.API().Key, c.schema == c.schema.API().Request)
			m.SetVersion(v)
			if err := m.ReadFrom(c.wire); err != nil {
				t.Fatalf("kmsg ReadFrom: %v", err)
			}
			c.checkKmsg(t, m)
			if kb := m.AppendTo(nil); !bytes.Equal(kb, c.wire) {
				t.Errorf("kmsg re-encodes to %x, want %x", kb, c.wire)
			}
		})
	}
}

// goldenPathParts splits "A[0].B.C[2]" into names and indexes: each part is
// a field name, and idx its element index or -1.
func goldenPathParts(path string) (names []string, idx []int) {
	for _, p := range strings.Split(path, ".") {
		name, rest, ok := strings.Cut(p, "[")
		i := -1
		if ok {
			n, err := strconv.Atoi(strings.TrimSuffix(rest, "]"))
			if err != nil {
				panic("bad path " + path)
			}
			i = n
		}
		names, idx = append(names, name), append(idx, i)
	}
	return names, idx
}

// goldenViewAt reads the field at path through the View accessors.
func goldenViewAt(t *testing.T, v protocol.View, path string) any {
	t.Helper()
	names, idx := goldenPathParts(path)
	for i, name := range names {
		s := v.Schema()
		h := s.Handle(name)
		f := s.Field(fieldIndex(s, name))
		last := i == len(names)-1
		switch {
		case h.Kind() == protocol.KindArray && idx[i] >= 0:
			v = v.Array(h).At(idx[i])
			continue
		case h.Kind() == protocol.KindStruct && !last:
			sv, ok := v.Struct(h)
			if !ok {
				return goldenNull
			}
			v = sv
			continue
		}
		if !last {
			t.Fatalf("%s: %s is a %s", path, name, h.Kind())
		}
		nullable := f.NullableVersions.Contains(v.Version())
		switch h.Kind() {
		case protocol.KindArray:
			a := v.Array(h)
			if a.IsNull() {
				return goldenNull
			}
			return goldenLen(a.Len())
		case protocol.KindStruct:
			if _, ok := v.Struct(h); !ok {
				return goldenNull
			}
			return "struct"
		case protocol.KindString:
			if nullable && v.IsNull(h) {
				return goldenNull
			}
			return v.String(h)
		case protocol.KindBytes:
			if b := v.Bytes(h); b != nil {
				return b
			}
			return goldenNull
		case protocol.KindRecords:
			if b := v.Records(h); b != nil {
				return b
			}
			return goldenNull
		case protocol.KindBool:
			return v.Bool(h)
		case protocol.KindInt8:
			return v.Int8(h)
		case protocol.KindInt16:
			return v.Int16(h)
		case protocol.KindInt32:
			return v.Int32(h)
		case protocol.KindInt64:
			return v.Int64(h)
		case protocol.KindUUID:
			return v.UUID(h)
		}
		t.Fatalf("%s: no golden reader for %s", path, h.Kind())
	}
	return nil
}

// goldenRecordAt reads the field at path from a Record.
func goldenRecordAt(t *testing.T, r *protocol.Record, v int16, path string) any {
	t.Helper()
	names, idx := goldenPathParts(path)
	for i, name := range names {
		s := r.Schema()
		h := s.Handle(name)
		last := i == len(names)-1
		x := r.Get(h)
		switch {
		case h.Kind() == protocol.KindArray && idx[i] >= 0:
			r = r.Elems(h)[idx[i]]
			continue
		case h.Kind() == protocol.KindStruct && !last:
			if r = r.Struct(h); r == nil {
				r = protocol.NewRecord(s.Child(h)) // not sent: defaults
			}
			continue
		}
		if !last {
			t.Fatalf("%s: %s is a %s", path, name, h.Kind())
		}
		switch h.Kind() {
		case protocol.KindArray:
			if x == nil || reflect.ValueOf(x).IsNil() {
				if !s.Field(fieldIndex(s, name)).NullableVersions.Contains(v) {
					return goldenLen(0) // nil where null is not allowed: empty
				}
				return goldenNull
			}
			return goldenLen(reflect.ValueOf(x).Len())
		case protocol.KindStruct:
			if x == nil {
				return goldenNull
			}
			return "struct"
		case protocol.KindString, protocol.KindBytes, protocol.KindRecords:
			if x == nil {
				return goldenNull
			}
		}
		return x
	}
	return nil
}
