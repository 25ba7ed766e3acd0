package protocol

import (
	"fmt"
	"math"
	"strconv"
)

// EncodeError reports a Record that cannot be written at a version: a null
// where the version does not allow one, or a value out of its wire range.
type EncodeError struct {
	Schema  string
	Version int16
	Path    string
	Reason  string
}

func (e *EncodeError) Error() string {
	return fmt.Sprintf("protocol: encode %s v%d: %s: %s", e.Schema, e.Version, e.Path, e.Reason)
}

// Size returns the encoded size of r at version v. It allocates nothing.
// For a Record that AppendTo would reject, the result is meaningless.
func (r *Record) Size(v int16) int {
	l, err := r.schema.layout(v)
	if err != nil {
		return 0
	}
	return sizeStruct(l, r)
}

// AppendTo appends r encoded at version v to dst in one pass and returns
// the extended buffer. With enough capacity in dst it allocates nothing.
// On error dst is returned unextended.
func (r *Record) AppendTo(dst []byte, v int16) ([]byte, error) {
	l, err := r.schema.layout(v)
	if err != nil {
		return dst, err
	}
	out, path, reason := appendStruct(dst, l, r, nil)
	if reason != "" {
		return dst, &EncodeError{Schema: r.schema.name, Version: v, Path: path, Reason: reason}
	}
	return out, nil
}

// val returns slot i of r, or the field's default when r is nil (a
// non-nullable struct left unset encodes as its defaults).
func val(l *layout, r *Record, i int) any {
	if r == nil {
		return l.schema.fields[i].def
	}
	return r.vals[i]
}

func sizeStruct(l *layout, r *Record) int {
	n := 0
	for i := range l.inline {
		o := &l.inline[i]
		n += sizeField(o, l.flexible, val(l, r, o.slot))
	}
	if !l.flexible {
		return n
	}
	count := 0
	for i := range l.tagged {
		o := &l.tagged[i]
		x := val(l, r, o.slot)
		if isDefault(o, x) {
			continue
		}
		count++
		s := sizeField(o, true, x)
		n += UvarintLen(uint64(o.tag)) + UvarintLen(uint64(s)) + s
	}
	if r != nil {
		count += countTags(r.unknown)
		n += len(r.unknown)
	}
	return n + UvarintLen(uint64(count))
}

func lenSize(k Kind, flexible bool, n int) int {
	if flexible {
		return UvarintLen(uint64(n + 1))
	}
	if k == KindString {
		return 2
	}
	return 4
}

func sizeField(o *op, flexible bool, x any) int {
	if w := o.kind.fixedSize(); w > 0 {
		return w
	}
	switch o.kind {
	case KindVarint:
		v, _ := x.(int32)
		return VarintLen(int64(v))
	case KindVarlong:
		v, _ := x.(int64)
		return VarintLen(v)
	case KindString:
		s, _ := x.(string) // null and empty have the same size
		return lenSize(KindString, flexible, len(s)) + len(s)
	case KindBytes, KindRecords:
		b, _ := x.([]byte)
		return lenSize(KindBytes, flexible, len(b)) + len(b)
	case KindStruct:
		c, _ := x.(*Record)
		if o.nullable {
			if c == nil && o.nullIsDefault() {
				return 1
			}
			return 1 + sizeStruct(o.child, c)
		}
		return sizeStruct(o.child, c)
	case KindArray:
		return sizeArray(o, flexible, x)
	}
	return 0
}

// nullIsDefault: for a nullable struct a nil *Record means null, which is
// its default; for a non-nullable one it means "all fields at defaults".
func (o *op) nullIsDefault() bool { return !o.field.NullableVersions.IsNever() }

func sizeArray(o *op, flexible bool, x any) int {
	n := arrayLen(x)
	if n < 0 {
		return lenSize(KindArray, flexible, -1)
	}
	total := lenSize(KindArray, flexible, n)
	if w := o.elem.fixedSize(); w > 0 {
		return total + n*w
	}
	switch v := x.(type) {
	case []*Record:
		for _, e := range v {
			total += sizeStruct(o.child, e)
		}
	case []string:
		for _, s := range v {
			total += lenSize(KindString, flexible, len(s)) + len(s)
		}
	case [][]byte:
		for _, b := range v {
			if b == nil {
				total += lenSize(KindBytes, flexible, -1)
			} else {
				total += lenSize(KindBytes, flexible, len(b)) + len(b)
			}
		}
	case []int32:
		for _, e := range v {
			total += VarintLen(int64(e))
		}
	case []int64:
		for _, e := range v {
			total += VarintLen(e)
		}
	}
	return total
}

// arrayLen is the length of any array value, or -1 for null.
func arrayLen(x any) int {
	switch v := x.(type) {
	case nil:
		return -1
	case []*Record:
		return nilLen(v == nil, len(v))
	case []bool:
		return nilLen(v == nil, len(v))
	case []int8:
		return nilLen(v == nil, len(v))
	case []int16:
		return nilLen(v == nil, len(v))
	case []uint16:
		return nilLen(v == nil, len(v))
	case []int32:
		return nilLen(v == nil, len(v))
	case []uint32:
		return nilLen(v == nil, len(v))
	case []int64:
		return nilLen(v == nil, len(v))
	case []float64:
		return nilLen(v == nil, len(v))
	case [][16]byte:
		return nilLen(v == nil, len(v))
	case []string:
		return nilLen(v == nil, len(v))
	case [][]byte:
		return nilLen(v == nil, len(v))
	}
	return -1
}

func nilLen(isNil bool, n int) int {
	if isNil {
		return -1
	}
	return n
}

// isDefault reports whether a tagged field holds its default, in which case
// it is not sent.
func isDefault(o *op, x any) bool {
	f := o.field
	switch o.kind {
	case KindString:
		if x == nil || f.def == nil {
			return x == f.def
		}
		s, _ := x.(string)
		d, _ := f.def.(string)
		return s == d
	case KindBytes, KindRecords:
		b, _ := x.([]byte)
		if f.HasDefault && f.DefaultValue == nil {
			return b == nil
		}
		return len(b) == 0
	case KindArray:
		n := arrayLen(x)
		if f.HasDefault && f.DefaultValue == nil {
			return n < 0
		}
		return n <= 0
	case KindStruct:
		c, _ := x.(*Record)
		if c == nil {
			return true // null, or all defaults
		}
		if o.nullIsDefault() {
			return false // present, where the default is null
		}
		if len(c.unknown) > 0 {
			return false
		}
		l := o.child
		for i := range l.inline {
			if !isDefault(&l.inline[i], c.vals[l.inline[i].slot]) {
				return false
			}
		}
		for i := range l.tagged {
			if !isDefault(&l.tagged[i], c.vals[l.tagged[i].slot]) {
				return false
			}
		}
		return true
	}
	return x == f.def
}

// countTags counts the raw (tag, size, value) entries in b.
func countTags(b []byte) int {
	n := 0
	for len(b) > 0 {
		_, k := uvarint32(b)
		if k <= 0 {
			return n
		}
		b = b[k:]
		size, k := uvarint32(b)
		if k <= 0 || int(size) > len(b)-k {
			return n
		}
		b = b[k+int(size):]
		n++
	}
	return n
}

// appendStruct encodes r at layout l. On failure it returns the path to
// the offending field and why.
func appendStruct(dst []byte, l *layout, r *Record, vs *vecState) ([]byte, string, string) {
	var path, reason string
	for i := range l.inline {
		o := &l.inline[i]
		if dst, path, reason = appendField(dst, o, l.flexible, val(l, r, o.slot), vs); reason != "" {
			return dst, joinPath(o.field.Name, path), reason
		}
	}
	if !l.flexible {
		return dst, "", ""
	}
	count := 0
	for i := range l.tagged {
		if !isDefault(&l.tagged[i], val(l, r, l.tagged[i].slot)) {
			count++
		}
	}
	var unknown []byte
	if r != nil {
		unknown = r.unknown
		count += countTags(unknown)
	}
	dst = AppendUvarint(dst, uint64(count))
	// Merge known tagged fields with unknown raw entries, by ascending tag.
	for i := range l.tagged {
		o := &l.tagged[i]
		x := val(l, r, o.slot)
		if isDefault(o, x) {
			continue
		}
		for len(unknown) > 0 {
			tag, _ := uvarint32(unknown)
			if tag > o.tag {
				break
			}
			e := rawTagLen(unknown)
			dst, unknown = append(dst, unknown[:e]...), unknown[e:]
		}
		dst = AppendUvarint(dst, uint64(o.tag))
		dst = AppendUvarint(dst, uint64(sizeField(o, true, x)))
		if dst, path, reason = appendField(dst, o, true, x, vs); reason != "" {
			return dst, joinPath(o.field.Name, path), reason
		}
	}
	return append(dst, unknown...), "", ""
}

func rawTagLen(b []byte) int {
	_, k1 := uvarint32(b)
	size, k2 := uvarint32(b[k1:])
	return k1 + k2 + int(size)
}

func joinPath(name, rest string) string {
	switch {
	case rest == "":
		return name
	case rest[0] == '[':
		return name + rest
	}
	return name + "." + rest
}

func appendLen(dst []byte, k Kind, flexible bool, n int) []byte {
	if flexible {
		return AppendUvarint(dst, uint64(n+1))
	}
	if k == KindString {
		return appendInt16(dst, int16(n))
	}
	return appendInt32(dst, int32(n))
}

func appendField(dst []byte, o *op, flexible bool, x any, vs *vecState) ([]byte, string, string) {
	switch o.kind {
	case KindBool:
		b, _ := x.(bool)
		if b {
			return append(dst, 1), "", ""
		}
		return append(dst, 0), "", ""
	case KindInt8:
		v, _ := x.(int8)
		return append(dst, byte(v)), "", ""
	case KindInt16:
		v, _ := x.(int16)
		return appendInt16(dst, v), "", ""
	case KindUint16:
		v, _ := x.(uint16)
		return appendInt16(dst, int16(v)), "", ""
	case KindInt32:
		v, _ := x.(int32)
		return appendInt32(dst, v), "", ""
	case KindUint32:
		v, _ := x.(uint32)
		return appendInt32(dst, int32(v)), "", ""
	case KindInt64:
		v, _ := x.(int64)
		return appendInt64(dst, v), "", ""
	case KindFloat64:
		v, _ := x.(float64)
		return appendInt64(dst, int64(math.Float64bits(v))), "", ""
	case KindUUID:
		v, _ := x.([16]byte)
		return append(dst, v[:]...), "", ""
	case KindVarint:
		v, _ := x.(int32)
		return AppendVarint(dst, int64(v)), "", ""
	case KindVarlong:
		v, _ := x.(int64)
		return AppendVarint(dst, v), "", ""
	case KindString:
		s, ok := x.(string)
		if !ok && o.nullable {
			return appendLen(dst, KindString, flexible, -1), "", ""
		}
		// A null where this version cannot say null is written as empty,
		// the closest value the version has (as kmsg does): defaults of
		// fields nullable only in later versions, and nulls read leniently
		// from brokers that send them for non-nullable fields.
		if len(s) > math.MaxInt16 && !flexible {
			return dst, "", fmt.Sprintf("string of %d bytes is too long", len(s))
		}
		return append(appendLen(dst, KindString, flexible, len(s)), s...), "", ""
	case KindBytes, KindRecords:
		b, _ := x.([]byte)
		if b == nil && o.nullable {
			return appendLen(dst, KindBytes, flexible, -1), "", ""
		}
		dst = appendLen(dst, KindBytes, flexible, len(b))
		if vs != nil && o.kind == KindRecords && len(b) >= vs.min {
			return vs.cut(dst, b), "", ""
		}
		return append(dst, b...), "", ""
	case KindStruct:
		c, _ := x.(*Record)
		if o.nullable {
			if c == nil && o.nullIsDefault() {
				return append(dst, 0xff), "", ""
			}
			dst = append(dst, 1)
		}
		return appendStruct(dst, o.child, c, vs)
	case KindArray:
		return appendArray(dst, o, flexible, x, vs)
	}
	return dst, "", "unknown kind " + o.kind.String()
}

func appendArray(dst []byte, o *op, flexible bool, x any, vs *vecState) ([]byte, string, string) {
	n := arrayLen(x)
	if n < 0 {
		if !o.nullable {
			// A nil slice where null is not allowed is an empty array,
			// as for Go slices everywhere else.
			return appendLen(dst, KindArray, flexible, 0), "", ""
		}
		return appendLen(dst, KindArray, flexible, -1), "", ""
	}
	dst = appendLen(dst, KindArray, flexible, n)
	switch v := x.(type) {
	case []*Record:
		for i, e := range v {
			var path, reason string
			if dst, path, reason = appendStruct(dst, o.child, e, vs); reason != "" {
				return dst, joinPath("["+strconv.Itoa(i)+"]", path), reason
			}
		}
	case []bool:
		for _, e := range v {
			if e {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		}
	case []int8:
		for _, e := range v {
			dst = append(dst, byte(e))
		}
	case []int16:
		for _, e := range v {
			dst = appendInt16(dst, e)
		}
	case []uint16:
		for _, e := range v {
			dst = appendInt16(dst, int16(e))
		}
	case []int32:
		for _, e := range v {
			if o.elem == KindVarint {
				dst = AppendVarint(dst, int64(e))
			} else {
				dst = appendInt32(dst, e)
			}
		}
	case []uint32:
		for _, e := range v {
			dst = appendInt32(dst, int32(e))
		}
	case []int64:
		for _, e := range v {
			if o.elem == KindVarlong {
				dst = AppendVarint(dst, e)
			} else {
				dst = appendInt64(dst, e)
			}
		}
	case []float64:
		for _, e := range v {
			dst = appendInt64(dst, int64(math.Float64bits(e)))
		}
	case [][16]byte:
		for _, e := range v {
			dst = append(dst, e[:]...)
		}
	case []string:
		for _, e := range v {
			dst = append(appendLen(dst, KindString, flexible, len(e)), e...)
		}
	case [][]byte:
		for _, e := range v {
			if e == nil {
				dst = appendLen(dst, KindBytes, flexible, -1)
			} else {
				dst = append(appendLen(dst, KindBytes, flexible, len(e)), e...)
			}
		}
	}
	return dst, "", ""
}

// vecState collects the segments of a vectored encoding: runs of encoded
// bytes, with large records fields in between referenced, not copied.
type vecState struct {
	bufs  [][]byte
	start int // where the current run of encoded bytes starts in dst
	min   int // records fields at least this large are referenced
}

// cut ends the current run at the end of dst and adds b as a segment of
// its own. Later appends to dst may move it; the segments already cut keep
// the bytes they reference.
func (vs *vecState) cut(dst, b []byte) []byte {
	vs.bufs = append(vs.bufs, dst[vs.start:len(dst):len(dst)], b)
	vs.start = len(dst)
	return dst
}

// VectoredMin is the size from which AppendRequestVectored references a
// records field instead of copying it: below it, a copy is cheaper than a
// separate iovec.
const VectoredMin = 4096

// AppendRequestVectored is AppendRequest for writev: it returns the frame
// as segments to write in order, where records fields of VectoredMin bytes
// or more are the caller's own slices, not copies. Encoded bytes go into
// dst, which is returned for reuse; bufs is reused too. The segments are
// valid as long as dst and the records are not modified.
func AppendRequestVectored(bufs [][]byte, dst []byte, r *Record, v int16, correlationID int32, clientID []byte) ([][]byte, []byte, error) {
	a := r.schema.api
	if r.schema != a.Request {
		return bufs, dst, fmt.Errorf("protocol: AppendRequestVectored given a %s, not a request", r.schema.name)
	}
	l, err := r.schema.layout(v)
	if err != nil {
		return bufs, dst, err
	}
	hv := a.RequestHeaderVersion(v)
	h := RequestHeader{APIKey: a.Key, APIVersion: v, CorrelationID: correlationID, ClientID: clientID}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = h.AppendTo(dst, hv)
	headerLen := len(dst) - start - 4
	putBE32(dst[start:], uint32(headerLen+sizeStruct(l, r)))
	vs := &vecState{bufs: bufs[:0], start: start, min: VectoredMin}
	dst, path, reason := appendStruct(dst, l, r, vs)
	if reason != "" {
		return bufs, dst[:start], &EncodeError{Schema: r.schema.name, Version: v, Path: path, Reason: reason}
	}
	if vs.start < len(dst) {
		vs.bufs = append(vs.bufs, dst[vs.start:len(dst):len(dst)])
	}
	return vs.bufs, dst, nil
}
