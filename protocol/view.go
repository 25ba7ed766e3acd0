package protocol

import (
	"fmt"
	"math"
	"unsafe"
)

// View is a zero-copy view of one struct of a decoded message: the message
// itself, an array element, or a nested struct. Reading a field is O(1) and
// allocates nothing; byte and string fields are sub-slices of the message.
//
// A View is valid until its Decoder decodes another message or is Reset.
// Views are small values: pass them by value.
type View struct {
	d   *Decoder
	l   *layout
	blk uint32 // index block (in absent's index for a struct not on the wire)
}

// Schema is the schema of the viewed struct.
func (v View) Schema() *Schema { return v.l.schema }

// Version is the version the message was decoded at.
func (v View) Version() int16 { return v.l.version }

// Valid reports whether v views something (the zero View does not).
func (v View) Valid() bool { return v.l != nil }

// off returns the field's index entry, checking that h belongs here and
// has the expected kind. Kept tiny so that accessors inline; the panic is
// for programming errors only, never for bad input.
func (v View) off(h Handle, k Kind) uint32 {
	if h.s != v.l.schema || h.kind != k {
		panic(misuseError{h, k})
	}
	return v.d.idx[v.blk+uint32(h.slot)]
}

// misuseError is the panic value for a handle used on the wrong schema or
// read as the wrong kind.
type misuseError struct {
	h Handle
	k Kind
}

func (e misuseError) Error() string {
	return fmt.Sprintf("protocol: field %s.%s (a %s) read as a %s through a view of another struct or kind",
		e.h.s.nameOrNil(), e.h.Name(), e.h.kind, e.k)
}

// absent backs views of structs that are not on the wire (absent from the
// version, not sent, or null): every entry is noField, so every field
// reads as its default. Shared and never written.
var absent = &Decoder{idx: func() []uint32 {
	idx := make([]uint32, maxFields+1)
	for i := range idx {
		idx[i] = noField
	}
	return idx
}()}

// maxFields bounds the fields of one struct, so that absent covers any
// block.
const maxFields = 255

// Has reports whether the field is on the wire in this message: false for
// fields absent from the version and for tagged fields not sent, whose
// accessors return the field's default.
func (v View) Has(h Handle) bool {
	v.l.schema.check(h)
	return v.d.idx[v.blk+uint32(h.slot)] != noField
}

// Bool reads a bool field.
func (v View) Bool(h Handle) bool {
	o := v.off(h, KindBool)
	if o == noField {
		return h.def != 0
	}
	return v.d.buf[o] != 0
}

// Int8 reads a int8 field.
func (v View) Int8(h Handle) int8 {
	o := v.off(h, KindInt8)
	if o == noField {
		return int8(h.def)
	}
	return int8(v.d.buf[o])
}

// Int16 reads a int16 field.
func (v View) Int16(h Handle) int16 {
	o := v.off(h, KindInt16)
	if o == noField {
		return int16(h.def)
	}
	return int16(be16(v.d.buf[o:]))
}

// Uint16 reads a uint16 field.
func (v View) Uint16(h Handle) uint16 {
	o := v.off(h, KindUint16)
	if o == noField {
		return uint16(h.def)
	}
	return be16(v.d.buf[o:])
}

// Int32 reads a int32 field.
func (v View) Int32(h Handle) int32 {
	o := v.off(h, KindInt32)
	if o == noField {
		return int32(h.def)
	}
	return int32(be32(v.d.buf[o:]))
}

// Uint32 reads a uint32 field.
func (v View) Uint32(h Handle) uint32 {
	o := v.off(h, KindUint32)
	if o == noField {
		return uint32(h.def)
	}
	return be32(v.d.buf[o:])
}

// Int64 reads a int64 field.
func (v View) Int64(h Handle) int64 {
	o := v.off(h, KindInt64)
	if o == noField {
		return int64(h.def)
	}
	return int64(be64(v.d.buf[o:]))
}

// Float64 reads a float64 field.
func (v View) Float64(h Handle) float64 {
	o := v.off(h, KindFloat64)
	if o == noField {
		return math.Float64frombits(h.def)
	}
	return math.Float64frombits(be64(v.d.buf[o:]))
}

// Varint reads a varint field.
func (v View) Varint(h Handle) int32 {
	o := v.off(h, KindVarint)
	if o == noField {
		return int32(h.def)
	}
	x, _ := ParseVarint(v.d.buf[o:])
	return int32(x)
}

// Varlong reads a varlong field.
func (v View) Varlong(h Handle) int64 {
	o := v.off(h, KindVarlong)
	if o == noField {
		return int64(h.def)
	}
	x, _ := ParseVarint(v.d.buf[o:])
	return x
}

// UUID reads a uuid field.
func (v View) UUID(h Handle) (u [16]byte) {
	o := v.off(h, KindUUID)
	if o == noField {
		return u
	}
	copy(u[:], v.d.buf[o:o+16])
	return u
}

// StringBytes reads a string field as a sub-slice of the message: no copy,
// valid as long as the view. A null string is nil; an empty one is non-nil.
func (v View) StringBytes(h Handle) []byte {
	o := v.off(h, KindString)
	if o == noField {
		if s, ok := h.s.fields[h.slot].def.(string); ok {
			return []byte(s) // a copy: defaults are shared and immutable
		}
		return nil
	}
	return v.d.lenPrefixedAt(KindString, v.l.flexible, o)
}

// String reads a string field as a newly allocated string ("" for null).
func (v View) String(h Handle) string { return string(v.StringBytes(h)) }

// UnsafeString reads a string field without copying: the string aliases the
// message buffer and must not be used after the buffer is released or reused.
func (v View) UnsafeString(h Handle) string {
	b := v.StringBytes(h)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Bytes reads a bytes field as a sub-slice of the message (nil for null).
// The slice's capacity is clipped so appends cannot overwrite the message.
func (v View) Bytes(h Handle) []byte {
	o := v.off(h, KindBytes)
	if o == noField {
		return nil
	}
	return v.d.lenPrefixedAt(KindBytes, v.l.flexible, o)
}

// Records reads a records field (record batches) as a sub-slice of the
// message, nil for null. Nothing is copied or parsed.
func (v View) Records(h Handle) []byte {
	o := v.off(h, KindRecords)
	if o == noField {
		return nil
	}
	return v.d.lenPrefixedAt(KindRecords, v.l.flexible, o)
}

// IsNull reports whether a nullable field is null.
func (v View) IsNull(h Handle) bool {
	v.l.schema.check(h)
	o := v.d.idx[v.blk+uint32(h.slot)]
	if o == noField {
		return isNullDefault(&h.s.fields[h.slot])
	}
	switch h.Kind() {
	case KindStruct:
		return o == nullSlot
	case KindArray:
		return o == nullSlot
	case KindString, KindBytes, KindRecords:
		n, _, _ := v.d.lenPrefix(h.Kind(), v.l.flexible, int(o), len(v.d.buf))
		return n < 0
	}
	return false
}

func isNullDefault(f *schemaField) bool {
	switch f.Kind {
	case KindString, KindBytes, KindRecords:
		return f.def == nil && !f.NullableVersions.IsNever()
	case KindArray:
		return !f.NullableVersions.IsNever() && (!f.HasDefault || f.DefaultValue == nil)
	case KindStruct:
		return !f.NullableVersions.IsNever() // a nullable struct defaults to null
	}
	return false
}

// lenPrefixedAt returns the payload of an already validated string, bytes
// or records field at offset o.
func (d *Decoder) lenPrefixedAt(k Kind, flexible bool, o uint32) []byte {
	if flexible {
		if c := d.buf[o]; c < 0x80 { // compact length under 127: one byte
			if c == 0 {
				return nil
			}
			s := o + 1
			e := s + uint32(c) - 1
			return d.buf[s:e:e]
		}
	}
	n, hdr, _ := d.lenPrefix(k, flexible, int(o), len(d.buf))
	if n < 0 {
		return nil
	}
	s := int(o) + hdr
	return d.buf[s : s+n : s+n]
}

// Struct returns a view of a struct field. For a null struct ok is false.
// For a struct absent from the version or not sent, the view reads defaults.
func (v View) Struct(h Handle) (sv View, ok bool) {
	o := v.off(h, KindStruct)
	child := v.l.children[h.slot]
	switch o {
	case nullSlot:
		return View{d: absent, l: child}, false
	case noField:
		return View{d: absent, l: child}, !isNullDefault(&h.s.fields[h.slot])
	}
	return View{d: v.d, l: child, blk: o}, true
}

// Array returns a view of an array field. An array absent from the version
// reads as empty (or null, if its default is null).
func (v View) Array(h Handle) ArrayView {
	o := v.off(h, KindArray)
	info := &v.l.arrays[h.slot]
	if o >= nullSlot {
		return info.empty[o-nullSlot] // null, or absent (read as its default)
	}
	return ArrayView{d: v.d, info: info, blk: o, n: int(v.d.idx[o])}
}

// arrayInfo describes an array field at one version, for its views.
type arrayInfo struct {
	l        *layout // element layout of a struct array
	stride   uint32  // index entries per struct element
	elem     Kind
	flexible bool
	// empty are the views of a null array and of an absent one (which
	// reads as empty, or as null when its default is null).
	empty [2]ArrayView
}

// ArrayView is a zero-copy view of an array field.
type ArrayView struct {
	d    *Decoder
	info *arrayInfo
	blk  uint32
	n    int // -1 for null
}

// Len is the number of elements (0 for a null array).
func (a ArrayView) Len() int { return max(a.n, 0) }

// IsNull reports whether the array is null.
func (a ArrayView) IsNull() bool { return a.n < 0 }

// At returns a view of struct element i. It panics if i is out of range,
// like a slice index.
func (a ArrayView) At(i int) View {
	if i < 0 || i >= a.n || a.info.l == nil {
		panic(indexError{i, a.n, a.info.elem})
	}
	return View{d: a.d, l: a.info.l, blk: a.blk + 1 + uint32(i)*a.info.stride}
}

// indexError is the panic value for an element index out of range, or At
// on an array of scalars.
type indexError struct {
	i, n int
	elem Kind
}

func (e indexError) Error() string {
	if e.elem != KindStruct {
		return "protocol: At on an array of " + e.elem.String()
	}
	return fmt.Sprintf("protocol: index %d out of range [0:%d]", e.i, e.n)
}

// elemOff returns the byte offset of scalar element i.
func (a ArrayView) elemOff(i int, k Kind) int {
	if i < 0 || i >= a.n {
		panic(fmt.Sprintf("protocol: index %d out of range [0:%d]", i, a.n))
	}
	if a.info.elem != k {
		panic(fmt.Sprintf("protocol: array of %s read as %s", a.info.elem, k))
	}
	if w := k.fixedSize(); w > 0 {
		return int(a.d.idx[a.blk+1]) + i*w
	}
	return int(a.d.idx[a.blk+1+uint32(i)])
}

// Int32At reads element i of an int32 array.
func (a ArrayView) Int32At(i int) int32 { return int32(be32(a.d.buf[a.elemOff(i, KindInt32):])) }

// Int64At reads element i of an int64 array.
func (a ArrayView) Int64At(i int) int64 { return int64(be64(a.d.buf[a.elemOff(i, KindInt64):])) }

// Int16At reads element i of an int16 array.
func (a ArrayView) Int16At(i int) int16 { return int16(be16(a.d.buf[a.elemOff(i, KindInt16):])) }

// BoolAt reads element i of a bool array.
func (a ArrayView) BoolAt(i int) bool { return a.d.buf[a.elemOff(i, KindBool)] != 0 }

// Int8At reads element i of an int8 array.
func (a ArrayView) Int8At(i int) int8 { return int8(a.d.buf[a.elemOff(i, KindInt8)]) }

// Uint16At reads element i of a uint16 array.
func (a ArrayView) Uint16At(i int) uint16 { return be16(a.d.buf[a.elemOff(i, KindUint16):]) }

// Uint32At reads element i of a uint32 array.
func (a ArrayView) Uint32At(i int) uint32 { return be32(a.d.buf[a.elemOff(i, KindUint32):]) }

// Float64At reads element i of a float64 array.
func (a ArrayView) Float64At(i int) float64 {
	return math.Float64frombits(be64(a.d.buf[a.elemOff(i, KindFloat64):]))
}

// VarintAt reads element i of a varint array.
func (a ArrayView) VarintAt(i int) int32 {
	x, _ := ParseVarint(a.d.buf[a.elemOff(i, KindVarint):])
	return int32(x)
}

// VarlongAt reads element i of a varlong array.
func (a ArrayView) VarlongAt(i int) int64 {
	x, _ := ParseVarint(a.d.buf[a.elemOff(i, KindVarlong):])
	return x
}

// BytesAt reads element i of a bytes array without copying (nil for null).
func (a ArrayView) BytesAt(i int) []byte {
	return a.d.lenPrefixedAt(KindBytes, a.info.flexible, uint32(a.elemOff(i, KindBytes)))
}

// UUIDAt reads element i of a uuid array.
func (a ArrayView) UUIDAt(i int) (u [16]byte) {
	copy(u[:], a.d.buf[a.elemOff(i, KindUUID):])
	return u
}

// StringBytesAt reads element i of a string array without copying.
func (a ArrayView) StringBytesAt(i int) []byte {
	return a.d.lenPrefixedAt(KindString, a.info.flexible, uint32(a.elemOff(i, KindString)))
}

// SetInt32 overwrites an int32 field in place. The field must be on the
// wire (see Has); the message's size does not change.
func (v View) SetInt32(h Handle, x int32) {
	o := v.off(h, KindInt32)
	if o == noField {
		panic("protocol: SetInt32 on " + h.Name() + ", which is not on the wire")
	}
	putBE32(v.d.buf[o:], uint32(x))
}

// SetInt64 overwrites an int64 field in place, as SetInt32.
func (v View) SetInt64(h Handle, x int64) {
	o := v.off(h, KindInt64)
	if o == noField {
		panic("protocol: SetInt64 on " + h.Name() + ", which is not on the wire")
	}
	putBE64(v.d.buf[o:], uint64(x))
}

// SetInt16 overwrites an int16 field in place, as SetInt32.
func (v View) SetInt16(h Handle, x int16) {
	o := v.off(h, KindInt16)
	if o == noField {
		panic("protocol: SetInt16 on " + h.Name() + ", which is not on the wire")
	}
	putBE16(v.d.buf[o:], uint16(x))
}
