package protocol

import "fmt"

// Kind is the wire type of a field, as named in Kafka's message specs.
type Kind uint8

// The wire types. Compact (flexible-version) encodings are chosen by the
// engine from the API's flexible versions; a schema never names them.
const (
	KindInvalid Kind = iota
	KindBool         // 1 byte, 0 or 1
	KindInt8         // 1 byte
	KindInt16        // 2 bytes, big-endian
	KindUint16       // 2 bytes, big-endian
	KindInt32        // 4 bytes, big-endian
	KindUint32       // 4 bytes, big-endian
	KindInt64        // 8 bytes, big-endian
	KindFloat64      // 8 bytes, IEEE 754 big-endian
	KindUUID         // 16 bytes
	KindVarint       // zig-zag varint, int32 range
	KindVarlong      // zig-zag varint, int64 range
	KindString       // int16 length (compact: uvarint length+1), UTF-8
	KindBytes        // int32 length (compact: uvarint length+1)
	KindRecords      // like nullable bytes; holds record batches, never copied
	KindStruct       // a nested struct (nullable structs carry an int8 marker)
	KindArray        // int32 count (compact: uvarint count+1) then elements
)

var kindNames = [...]string{
	KindInvalid: "invalid", KindBool: "bool", KindInt8: "int8", KindInt16: "int16",
	KindUint16: "uint16", KindInt32: "int32", KindUint32: "uint32", KindInt64: "int64",
	KindFloat64: "float64", KindUUID: "uuid", KindVarint: "varint", KindVarlong: "varlong",
	KindString: "string", KindBytes: "bytes", KindRecords: "records", KindStruct: "struct",
	KindArray: "array",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// fixedSize is the encoded width of a fixed-width kind, or 0.
func (k Kind) fixedSize() int {
	switch k {
	case KindBool, KindInt8:
		return 1
	case KindInt16, KindUint16:
		return 2
	case KindInt32, KindUint32:
		return 4
	case KindInt64, KindFloat64:
		return 8
	case KindUUID:
		return 16
	}
	return 0
}

// VersionRange is an inclusive range of versions. Max < 0 means "and every
// later version" (Kafka's "N+"). Min < 0 means the empty range ("none").
type VersionRange struct{ Min, Max int16 }

// Never is the empty version range.
var Never = VersionRange{Min: -1, Max: -1}

// From returns the open range v+.
func From(v int16) VersionRange { return VersionRange{Min: v, Max: -1} }

// Between returns the closed range lo-hi.
func Between(lo, hi int16) VersionRange { return VersionRange{Min: lo, Max: hi} }

// Contains reports whether v is in the range.
func (r VersionRange) Contains(v int16) bool {
	return r.Min >= 0 && v >= r.Min && (r.Max < 0 || v <= r.Max)
}

// IsNever reports whether the range is empty.
func (r VersionRange) IsNever() bool { return r.Min < 0 }

func (r VersionRange) String() string {
	switch {
	case r.Min < 0:
		return "none"
	case r.Max < 0:
		return fmt.Sprintf("%d+", r.Min)
	case r.Min == r.Max:
		return fmt.Sprintf("%d", r.Min)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}
