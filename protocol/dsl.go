package protocol

// This file is the schema language: the constructors and modifiers that API
// declarations in protocol/api are written with. A declaration reads like
// the protocol's BNF:
//
//	Int32("ThrottleTimeMs").V(1),
//	Array("Topics",
//		String("Name").V(0, 12),
//		UUID("TopicId").V(13),
//		Int32s("Partitions"),
//	),
//	String("ClusterId").Nullable().Default(nil).Tag(0),
//
// A Field is a plain value; modifiers return a modified copy.

// Field declares one field of a request, response or nested struct.
type Field struct {
	Name string
	Kind Kind
	// Elem is the element kind of an array (KindStruct for arrays of structs).
	Elem Kind
	// Fields are the fields of a struct, or of each element of a struct array.
	Fields []Field
	// Versions are the versions in which the field is on the wire.
	Versions VersionRange
	// NullableVersions are the versions in which the field may be null.
	// Only strings, bytes, records, arrays and structs can be nullable.
	NullableVersions VersionRange
	// TaggedVersions are the versions in which the field travels in the
	// tag section (KIP-482) under Tag instead of inline.
	TaggedVersions VersionRange
	TagID          uint32
	// DefaultValue is the value of the field when it is absent from a version,
	// or tagged and not sent. Only meaningful when HasDefault is set;
	// otherwise the kind's zero value (null for fields nullable in any
	// version).
	DefaultValue any
	HasDefault   bool

	nullableAll bool // Nullable(): nullable in every version the field exists in
	taggedFlex  bool // Tag(): tagged in every flexible version the field exists in
}

func scalar(name string, k Kind) Field {
	return Field{Name: name, Kind: k, Versions: From(0), NullableVersions: Never, TaggedVersions: Never}
}

// Bool declares a boolean field.
func Bool(name string) Field { return scalar(name, KindBool) }

// Int8 declares an int8 field.
func Int8(name string) Field { return scalar(name, KindInt8) }

// Int16 declares an int16 field.
func Int16(name string) Field { return scalar(name, KindInt16) }

// Uint16 declares a uint16 field.
func Uint16(name string) Field { return scalar(name, KindUint16) }

// Int32 declares an int32 field.
func Int32(name string) Field { return scalar(name, KindInt32) }

// Uint32 declares a uint32 field.
func Uint32(name string) Field { return scalar(name, KindUint32) }

// Int64 declares an int64 field.
func Int64(name string) Field { return scalar(name, KindInt64) }

// Float64 declares a float64 field.
func Float64(name string) Field { return scalar(name, KindFloat64) }

// UUID declares a 16-byte UUID field.
func UUID(name string) Field { return scalar(name, KindUUID) }

// Varint declares a zig-zag varint (int32) field.
func Varint(name string) Field { return scalar(name, KindVarint) }

// Varlong declares a zig-zag varlong (int64) field.
func Varlong(name string) Field { return scalar(name, KindVarlong) }

// String declares a string field.
func String(name string) Field { return scalar(name, KindString) }

// Bytes declares a bytes field.
func Bytes(name string) Field { return scalar(name, KindBytes) }

// Records declares a records field: record batches carried as bytes, always
// nullable, and never copied by views.
func Records(name string) Field {
	f := scalar(name, KindRecords)
	f.nullableAll = true
	return f
}

// Struct declares a nested struct field.
func Struct(name string, fields ...Field) Field {
	f := scalar(name, KindStruct)
	f.Fields = fields
	return f
}

// Array declares an array of structs with the given fields.
func Array(name string, fields ...Field) Field {
	f := scalar(name, KindArray)
	f.Elem = KindStruct
	f.Fields = fields
	return f
}

// ArrayOf declares an array of scalars of kind elem.
func ArrayOf(name string, elem Kind) Field {
	f := scalar(name, KindArray)
	f.Elem = elem
	return f
}

// Int16s declares an array of int16.
func Int16s(name string) Field { return ArrayOf(name, KindInt16) }

// Int32s declares an array of int32.
func Int32s(name string) Field { return ArrayOf(name, KindInt32) }

// Int64s declares an array of int64.
func Int64s(name string) Field { return ArrayOf(name, KindInt64) }

// Strings declares an array of strings.
func Strings(name string) Field { return ArrayOf(name, KindString) }

// UUIDs declares an array of UUIDs.
func UUIDs(name string) Field { return ArrayOf(name, KindUUID) }

// V limits the field to versions min+ (one argument) or min-max (two).
func (f Field) V(min int16, max ...int16) Field {
	f.Versions = From(min)
	if len(max) > 0 {
		f.Versions = Between(min, max[0])
	}
	return f
}

// Nullable makes the field nullable in every version it exists in.
func (f Field) Nullable() Field {
	f.nullableAll = true
	return f
}

// NullableV makes the field nullable in versions min+ (or min-max).
func (f Field) NullableV(min int16, max ...int16) Field {
	f.NullableVersions = From(min)
	if len(max) > 0 {
		f.NullableVersions = Between(min, max[0])
	}
	return f
}

// Tag makes the field a tagged field with the given tag in every flexible
// version in which it exists.
func (f Field) Tag(tag uint32) Field {
	f.TagID, f.taggedFlex = tag, true
	return f
}

// TagV makes the field a tagged field with the given tag in versions min+.
func (f Field) TagV(tag uint32, min int16) Field {
	f.TagID, f.TaggedVersions = tag, From(min)
	return f
}

// Default sets the field's default. Integers may be given as untyped
// constants; nil is the null default of a nullable field.
func (f Field) Default(v any) Field {
	f.DefaultValue, f.HasDefault = v, true
	return f
}

// Route says where a request must be sent.
type Route uint8

const (
	// RouteAny: any broker can answer (admin, metadata).
	RouteAny Route = iota
	// RouteLeader: the partition leader of each partition named.
	RouteLeader
	// RouteGroupCoordinator: the coordinator of the named group.
	RouteGroupCoordinator
	// RouteTxnCoordinator: the coordinator of the transactional id.
	RouteTxnCoordinator
	// RouteController: the active controller (legacy admin requests).
	RouteController
)

func (r Route) String() string {
	switch r {
	case RouteLeader:
		return "leader"
	case RouteGroupCoordinator:
		return "group-coordinator"
	case RouteTxnCoordinator:
		return "txn-coordinator"
	case RouteController:
		return "controller"
	}
	return "any"
}

// NotFlexible is APIDef.FlexibleVersion for an API that is never flexible.
const NotFlexible = -1

// APIDef declares one API key: its versions, flexibility, routing and the
// fields of its request and response.
type APIDef struct {
	Key        int16
	Name       string
	MinVersion int16 // oldest version ktape encodes and decodes
	MaxVersion int16 // newest version ktape encodes and decodes
	// FlexibleVersion is the first flexible version (KIP-482), or NotFlexible.
	FlexibleVersion int16
	Route           Route
	Request         []Field
	Response        []Field
}
