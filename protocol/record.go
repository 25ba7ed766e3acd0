package protocol

import (
	"fmt"
	"math"
	"sync"
)

// Record is an owned, mutable message or nested struct (the "Record" of
// KAFKA-643): one slot per declared field, read and written by name or by a
// pre-resolved Handle. It holds no reference to any input buffer.
//
// Slot values have these Go types, by kind: bool, int8, int16, uint16,
// int32 (int32 and varint), uint32, int64 (int64 and varlong), float64,
// [16]byte (uuid), string (nil for a null string), []byte (bytes and
// records; nil for null), *Record (struct; nil for null, or for "all
// defaults" where not nullable), []*Record (array of structs; nil for null),
// and for arrays of scalars a slice of the element's type ([]int32,
// []string, [][16]byte, ...; nil for null).
//
// A Record is not safe for concurrent modification.
type Record struct {
	schema *Schema
	vals   []any
	// unknown holds tagged fields this version of ktape does not know,
	// as raw (tag, size, value) entries in ascending tag order, so that
	// re-encoding a decoded message loses nothing.
	unknown []byte
}

// NewRecord returns a Record of schema s with every field at its default.
func NewRecord(s *Schema) *Record {
	r := &Record{schema: s, vals: make([]any, len(s.fields))}
	for i := range s.fields {
		r.vals[i] = s.fields[i].def
	}
	return r
}

// Schema is the record's schema.
func (r *Record) Schema() *Schema { return r.schema }

// Get returns the value of field h.
func (r *Record) Get(h Handle) any { r.schema.check(h); return r.vals[h.slot] }

// GetName returns the value of the named field; it panics if there is none.
func (r *Record) GetName(name string) any { return r.Get(r.schema.Handle(name)) }

// Set stores the value of field h. It panics if v's type does not match the
// field's kind (see Record for the types): a caller error, not bad input.
func (r *Record) Set(h Handle, v any) *Record {
	r.schema.check(h)
	f := &r.schema.fields[h.slot]
	if !typeFits(f, v) {
		panic(fmt.Sprintf("protocol: %s.%s is a %s; cannot hold %T", r.schema.name, f.Name, describeKind(f), v))
	}
	if b, ok := v.([]byte); ok && b == nil {
		v = nil
	}
	r.vals[h.slot] = v
	return r
}

// SetName is Set by field name.
func (r *Record) SetName(name string, v any) *Record { return r.Set(r.schema.Handle(name), v) }

// New returns a new default element for the struct or struct-array field h,
// without storing it; use Append or Set to attach it.
func (r *Record) New(h Handle) *Record {
	r.schema.check(h)
	c := r.schema.fields[h.slot].child
	if c == nil {
		panic(fmt.Sprintf("protocol: %s.%s is not a struct or array of structs", r.schema.name, h.Name()))
	}
	return NewRecord(c)
}

// Append adds a new default element to the struct-array field h and
// returns it.
func (r *Record) Append(h Handle) *Record {
	e := r.New(h)
	if h.kind != KindArray {
		panic(fmt.Sprintf("protocol: %s.%s is not an array", r.schema.name, h.Name()))
	}
	elems, _ := r.vals[h.slot].([]*Record)
	r.vals[h.slot] = append(elems, e)
	return e
}

// Int32 returns an int32 or varint field.
func (r *Record) Int32(h Handle) int32 { v, _ := r.Get(h).(int32); return v }

// Int64 returns an int64 or varlong field.
func (r *Record) Int64(h Handle) int64 { v, _ := r.Get(h).(int64); return v }

// Int16 returns an int16 field.
func (r *Record) Int16(h Handle) int16 { v, _ := r.Get(h).(int16); return v }

// String returns a string field ("" for null).
func (r *Record) String(h Handle) string { v, _ := r.Get(h).(string); return v }

// Bytes returns a bytes or records field (nil for null).
func (r *Record) Bytes(h Handle) []byte { v, _ := r.Get(h).([]byte); return v }

// Elems returns the elements of a struct-array field (nil for null).
func (r *Record) Elems(h Handle) []*Record { v, _ := r.Get(h).([]*Record); return v }

// Struct returns a struct field (nil for null or all-defaults).
func (r *Record) Struct(h Handle) *Record { v, _ := r.Get(h).(*Record); return v }

// UnknownTags returns the raw tagged fields that ktape did not recognise.
func (r *Record) UnknownTags() []byte { return r.unknown }

func describeKind(f *schemaField) string {
	if f.Kind == KindArray {
		return "array of " + f.Elem.String()
	}
	return f.Kind.String()
}

func typeFits(f *schemaField, v any) bool {
	if v == nil {
		switch f.Kind {
		case KindString, KindBytes, KindRecords, KindStruct, KindArray:
			return true
		}
		return false
	}
	if f.Kind == KindArray {
		return sliceFits(f.Elem, v)
	}
	return scalarFits(f.Kind, v)
}

func scalarFits(k Kind, v any) bool {
	switch v.(type) {
	case bool:
		return k == KindBool
	case int8:
		return k == KindInt8
	case int16:
		return k == KindInt16
	case uint16:
		return k == KindUint16
	case int32:
		return k == KindInt32 || k == KindVarint
	case uint32:
		return k == KindUint32
	case int64:
		return k == KindInt64 || k == KindVarlong
	case float64:
		return k == KindFloat64
	case [16]byte:
		return k == KindUUID
	case string:
		return k == KindString
	case []byte:
		return k == KindBytes || k == KindRecords
	case *Record:
		return k == KindStruct
	}
	return false
}

func sliceFits(elem Kind, v any) bool {
	switch v.(type) {
	case []*Record:
		return elem == KindStruct
	case []bool:
		return elem == KindBool
	case []int8:
		return elem == KindInt8
	case []int16:
		return elem == KindInt16
	case []uint16:
		return elem == KindUint16
	case []int32:
		return elem == KindInt32 || elem == KindVarint
	case []uint32:
		return elem == KindUint32
	case []int64:
		return elem == KindInt64 || elem == KindVarlong
	case []float64:
		return elem == KindFloat64
	case [][16]byte:
		return elem == KindUUID
	case []string:
		return elem == KindString
	case [][]byte:
		return elem == KindBytes
	}
	return false
}

var decoderPool = sync.Pool{New: func() any { return new(Decoder) }}

// Decode decodes b as a message of schema s at version v into an owned
// Record that shares no memory with b.
func Decode(s *Schema, v int16, b []byte) (*Record, error) {
	d := decoderPool.Get().(*Decoder)
	defer func() { d.Reset(); decoderPool.Put(d) }()
	view, err := d.Decode(s, v, b)
	if err != nil {
		return nil, err
	}
	return view.Record(), nil
}

// Record copies the viewed struct into an owned Record.
func (v View) Record() *Record {
	r := NewRecord(v.l.schema)
	if v.d == absent {
		return r
	}
	l := v.l
	for i := range l.inline {
		v.copyField(r, &l.inline[i])
	}
	for i := range l.tagged {
		v.copyField(r, &l.tagged[i])
	}
	if l.flexible {
		r.unknown = v.unknownTags()
	}
	return r
}

func (v View) copyField(r *Record, o *op) {
	at := v.d.idx[v.blk+uint32(o.slot)]
	if at == noField {
		return // keeps the default
	}
	h := Handle{s: v.l.schema, slot: o.slot, kind: o.kind}
	switch o.kind {
	case KindBool:
		r.vals[o.slot] = v.Bool(h)
	case KindInt8:
		r.vals[o.slot] = v.Int8(h)
	case KindInt16:
		r.vals[o.slot] = v.Int16(h)
	case KindUint16:
		r.vals[o.slot] = v.Uint16(h)
	case KindInt32:
		r.vals[o.slot] = v.Int32(h)
	case KindUint32:
		r.vals[o.slot] = v.Uint32(h)
	case KindInt64:
		r.vals[o.slot] = v.Int64(h)
	case KindFloat64:
		r.vals[o.slot] = v.Float64(h)
	case KindUUID:
		r.vals[o.slot] = v.UUID(h)
	case KindVarint:
		r.vals[o.slot] = v.Varint(h)
	case KindVarlong:
		r.vals[o.slot] = v.Varlong(h)
	case KindString:
		if b := v.StringBytes(h); b != nil {
			r.vals[o.slot] = string(b)
		} else {
			r.vals[o.slot] = nil
		}
	case KindBytes, KindRecords:
		b := v.d.lenPrefixedAt(o.kind, v.l.flexible, at)
		if b != nil {
			r.vals[o.slot] = append([]byte{}, b...)
		} else {
			r.vals[o.slot] = nil
		}
	case KindStruct:
		if sv, ok := v.Struct(h); ok {
			r.vals[o.slot] = sv.Record()
		} else {
			r.vals[o.slot] = nil
		}
	case KindArray:
		r.vals[o.slot] = v.Array(h).values()
	}
}

// values copies an array into the slice type Record uses for it.
func (a ArrayView) values() any {
	if a.n < 0 {
		return nil
	}
	n := a.n
	switch a.info.elem {
	case KindStruct:
		out := make([]*Record, n)
		for i := range out {
			out[i] = a.At(i).Record()
		}
		return out
	case KindString:
		out := make([]string, n)
		for i := range out {
			out[i] = string(a.StringBytesAt(i))
		}
		return out
	case KindBytes:
		out := make([][]byte, n)
		for i := range out {
			b := a.d.lenPrefixedAt(KindBytes, a.info.flexible, uint32(a.elemOff(i, KindBytes)))
			if b != nil {
				out[i] = append([]byte{}, b...)
			}
		}
		return out
	case KindUUID:
		out := make([][16]byte, n)
		for i := range out {
			out[i] = a.UUIDAt(i)
		}
		return out
	}
	return a.fixedValues()
}

func (a ArrayView) fixedValues() any {
	n := a.n
	at := func(i int) []byte { return a.d.buf[a.elemOff(i, a.info.elem):] }
	switch a.info.elem {
	case KindBool:
		out := make([]bool, n)
		for i := range out {
			out[i] = at(i)[0] != 0
		}
		return out
	case KindInt8:
		out := make([]int8, n)
		for i := range out {
			out[i] = int8(at(i)[0])
		}
		return out
	case KindInt16:
		out := make([]int16, n)
		for i := range out {
			out[i] = int16(be16(at(i)))
		}
		return out
	case KindUint16:
		out := make([]uint16, n)
		for i := range out {
			out[i] = be16(at(i))
		}
		return out
	case KindInt32:
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(be32(at(i)))
		}
		return out
	case KindUint32:
		out := make([]uint32, n)
		for i := range out {
			out[i] = be32(at(i))
		}
		return out
	case KindInt64:
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(be64(at(i)))
		}
		return out
	case KindFloat64:
		out := make([]float64, n)
		for i := range out {
			out[i] = math.Float64frombits(be64(at(i)))
		}
		return out
	case KindVarint:
		out := make([]int32, n)
		for i := range out {
			x, _ := ParseVarint(at(i))
			out[i] = int32(x)
		}
		return out
	case KindVarlong:
		out := make([]int64, n)
		for i := range out {
			out[i], _ = ParseVarint(at(i))
		}
		return out
	}
	return nil
}

// unknownTags copies the tag section's entries for tags this layout does
// not know.
func (v View) unknownTags() []byte {
	d, l := v.d, v.l
	pos := int(d.idx[v.blk+uint32(l.nslots)])
	n, k := uvarint32(d.buf[pos:])
	pos += k
	var out []byte
	for ; n > 0; n-- {
		start := pos
		tag, k := uvarint32(d.buf[pos:])
		pos += k
		size, k := uvarint32(d.buf[pos:])
		pos += k + int(size)
		if !l.knowsTag(tag) {
			out = append(out, d.buf[start:pos]...)
		}
	}
	return out
}

func (l *layout) knowsTag(tag uint32) bool {
	for i := range l.tagged {
		if l.tagged[i].tag == tag {
			return true
		}
	}
	return false
}
