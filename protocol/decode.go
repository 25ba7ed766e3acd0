package protocol

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A Decoder validates a message body once and records where each field
// starts in an index, so that a View can then read any field in O(1)
// without copying. The index is a flat []uint32 reused across calls: once it
// has grown to fit the largest message seen, decoding allocates nothing.
//
// Index layout: every struct instance owns a block of NumFields()+1 entries.
// Entry i holds the byte offset of field i, or noField when the field is not
// on the wire (absent from the version, or a tagged field not sent), or
// nullSlot for a null struct or array. Struct fields hold the index position of the
// child's block instead of a byte offset; array fields hold the position of
// the array's block: [count, elements...], where struct elements are blocks
// laid out back to back, fixed-width scalar elements share one entry (the
// offset of the first element) and variable-width ones have one entry each.
// The block's last entry is the offset of the struct's tag section.
//
// The index holds at most IndexEntriesPerByte entries per byte of input,
// plus a constant (every array element takes at least one byte), so its
// size is bounded by the message size, not by any count read from it.
//
// A Decoder is not safe for concurrent use. The zero value is ready to use.
type Decoder struct {
	buf []byte
	idx []uint32
}

const (
	noField  = math.MaxUint32     // not on the wire: read the default
	nullSlot = math.MaxUint32 - 1 // a null struct or array
	maxBuf   = math.MaxUint32 - 2 // offsets must stay below the sentinels
)

// Decode validates b as a message of schema s at version v and returns a
// view of it. The view and everything read through it borrow b and the
// decoder's index: they are valid until the next call to Decode or Reset,
// and only while b is not modified except through the view's setters.
func (d *Decoder) Decode(s *Schema, v int16, b []byte) (View, error) {
	l, err := s.layout(v)
	if err != nil {
		return View{}, err
	}
	if len(b) > maxBuf {
		return View{}, &DecodeError{Schema: s.name, Version: v, Reason: fmt.Sprintf("message of %d bytes is too large", len(b))}
	}
	d.buf = b
	d.idx = d.idx[:0]
	blk := d.reserveBlocks(l, 1)
	end, derr := d.walkStruct(l, 0, blk, len(b))
	if derr == nil && end != len(b) {
		derr = &DecodeError{Offset: end, Reason: fmt.Sprintf("%d bytes left over after the message", len(b)-end)}
	}
	if derr != nil {
		derr.Schema, derr.Version = s.name, v
		derr.finish()
		return View{}, derr
	}
	return View{d: d, l: l, blk: blk}, nil
}

// Reset drops the decoder's reference to the last message, so that its
// buffer can be reused or collected. Views of it become invalid.
func (d *Decoder) Reset() { d.buf, d.idx = nil, d.idx[:0] }

// reserve appends n entries and returns the first's position. The entries
// are not initialised: the caller writes them.
func (d *Decoder) reserve(n int) uint32 {
	at := len(d.idx)
	if cap(d.idx)-at < n {
		grown := make([]uint32, at, 2*cap(d.idx)+n)
		copy(grown, d.idx)
		d.idx = grown
	}
	d.idx = d.idx[:at+n]
	return uint32(at)
}

// reserveBlocks appends n consecutive blocks for structs of layout l, with
// the slots the walk may leave unwritten set to noField.
func (d *Decoder) reserveBlocks(l *layout, n int) uint32 {
	per := l.nslots + 1
	at := d.reserve(n * per)
	for i := 0; i < n; i++ {
		b := d.idx[int(at)+i*per : int(at)+(i+1)*per]
		for _, s := range l.unset {
			b[s] = noField
		}
	}
	return at
}

// DecodeError reports malformed input: which message, which field, where.
type DecodeError struct {
	Schema  string // e.g. "FetchResponse"
	Version int16
	Path    string // e.g. "Responses[3].Partitions[0].Records"
	Offset  int    // byte offset in the message body
	Reason  string

	rev []string // path elements, innermost first, while unwinding
}

func (e *DecodeError) Error() string {
	path := e.Path
	if path == "" {
		path = "(message)"
	}
	return fmt.Sprintf("protocol: decode %s v%d: %s at byte %d: %s", e.Schema, e.Version, path, e.Offset, e.Reason)
}

func (e *DecodeError) in(name string) *DecodeError {
	e.rev = append(e.rev, name)
	return e
}

func (e *DecodeError) finish() {
	var sb strings.Builder
	for i := len(e.rev) - 1; i >= 0; i-- {
		p := e.rev[i]
		if sb.Len() > 0 && p[0] != '[' {
			sb.WriteByte('.')
		}
		sb.WriteString(p)
	}
	e.Path, e.rev = sb.String(), nil
}

// short reports which field of a run does not fit.
func (r *run) short(pos, end int) *DecodeError {
	for j, o := range r.ops {
		at := pos + int(r.fields[j].off)
		if w := o.kind.fixedSize(); end-at < w {
			return short(at, w, end).in(o.field.Name)
		}
	}
	return short(pos, r.size, end)
}

func short(pos, need, end int) *DecodeError {
	return &DecodeError{Offset: pos, Reason: fmt.Sprintf("need %d bytes, %d left", need, end-pos)}
}

// walkStruct validates one struct instance starting at pos, filling the
// index block at blk, and returns the offset just past it. end bounds the
// struct (the message end, or the end of a tagged field's value).
func (d *Decoder) walkStruct(l *layout, pos int, blk uint32, end int) (int, *DecodeError) {
	var err *DecodeError
	buf := d.buf[:end]
	// idx is this struct's block. Nested arrays and structs may grow (and
	// move) d.idx, so it is re-sliced after the general path.
	idx := d.idx[blk : int(blk)+l.nslots+1]
	for i := range l.walk {
		o := &l.walk[i]
		switch o.code {
		case codeRun:
			r := o.run
			if len(buf)-pos < r.size {
				return pos, r.short(pos, end)
			}
			for _, f := range r.fields {
				idx[f.slot] = uint32(pos) + uint32(f.off)
			}
			pos += r.size
			continue
		case codeFixed:
			if w := int(o.width); len(buf)-pos >= w {
				idx[o.slot] = uint32(pos)
				pos += w
				continue
			}
		case codeString16:
			if len(buf)-pos >= 2 {
				if n := int(int16(be16(buf[pos:]))); n >= -1 && n <= len(buf)-pos-2 {
					idx[o.slot] = uint32(pos)
					pos += 2 + max(n, 0)
					continue
				}
			}
		case codeBytes32:
			if len(buf)-pos >= 4 {
				if n := int(int32(be32(buf[pos:]))); n >= -1 && n <= len(buf)-pos-4 {
					idx[o.slot] = uint32(pos)
					pos += 4 + max(n, 0)
					continue
				}
			}
		case codeCompact:
			// A compact length of one or two bytes.
			if b := buf[pos:]; len(b) >= 2 && b[0] != 0 && (b[0] < 0x80 || b[1] < 0x80) {
				n, k := int(b[0])-1, 1
				if b[0] >= 0x80 {
					n, k = int(b[0]&0x7f)|int(b[1])<<7-1, 2
				}
				if n >= 0 && n <= len(b)-k {
					idx[o.slot] = uint32(pos)
					pos += k + n
					continue
				}
			}
		case codeArray:
			// A null array: int32 -1, or compact 0.
			if l.flexible {
				if pos < len(buf) && buf[pos] == 0 && o.nullable {
					idx[o.slot] = nullSlot
					pos++
					continue
				}
			} else if len(buf)-pos >= 4 && int32(be32(buf[pos:])) == -1 && o.nullable {
				idx[o.slot] = nullSlot
				pos += 4
				continue
			}
		}
		// The general path, which also produces the errors.
		if pos, err = d.walkField(o, l.flexible, pos, blk, end); err != nil {
			return pos, err.in(o.field.Name)
		}
		idx = d.idx[blk : int(blk)+l.nslots+1]
	}
	if !l.flexible {
		return pos, nil
	}
	d.idx[blk+uint32(l.nslots)] = uint32(pos)
	if pos < end && d.buf[pos] == 0 { // the usual empty tag section
		return pos + 1, nil
	}
	return d.walkTags(l, pos, blk, end)
}

// walkTags validates a tag section: a count, then (tag, size, value) with
// known tags indexed and unknown ones skipped (they stay in the buffer and
// are carried along when a view is copied into a Record).
func (d *Decoder) walkTags(l *layout, pos int, blk uint32, end int) (int, *DecodeError) {
	n, k := uvarint32(d.buf[pos:end])
	if k <= 0 {
		return pos, &DecodeError{Offset: pos, Reason: "bad tag count"}
	}
	pos += k
	prev := int64(-1)
	for ; n > 0; n-- {
		tag, k := uvarint32(d.buf[pos:end])
		if k <= 0 {
			return pos, &DecodeError{Offset: pos, Reason: "bad tag"}
		}
		if int64(tag) == prev {
			return pos, &DecodeError{Offset: pos, Reason: fmt.Sprintf("duplicate tag %d", tag)}
		}
		if int64(tag) < prev {
			return pos, &DecodeError{Offset: pos, Reason: fmt.Sprintf("tag %d out of order after tag %d", tag, prev)}
		}
		prev = int64(tag)
		pos += k
		size, k := uvarint32(d.buf[pos:end])
		if k <= 0 {
			return pos, &DecodeError{Offset: pos, Reason: fmt.Sprintf("bad size of tag %d", tag)}
		}
		pos += k
		if int(size) > end-pos {
			return pos, &DecodeError{Offset: pos, Reason: fmt.Sprintf("tag %d of %d bytes, %d left", tag, size, end-pos)}
		}
		vend := pos + int(size)
		for i := range l.tagged {
			o := &l.tagged[i]
			if o.tag != tag {
				continue
			}
			got, err := d.walkField(o, true, pos, blk, vend)
			if err != nil {
				return got, err.in(o.field.Name)
			}
			if got != vend {
				return got, (&DecodeError{Offset: got, Reason: fmt.Sprintf("tagged value is %d bytes, its size says %d", got-pos, size)}).in(o.field.Name)
			}
			break
		}
		pos = vend
	}
	return pos, nil
}

// walkField validates one field at pos and records it in block blk.
func (d *Decoder) walkField(o *op, flexible bool, pos int, blk uint32, end int) (int, *DecodeError) {
	slot := blk + uint32(o.slot)
	if w := o.kind.fixedSize(); w > 0 {
		if end-pos < w {
			return pos, short(pos, w, end)
		}
		d.idx[slot] = uint32(pos)
		return pos + w, nil
	}
	switch o.kind {
	case KindVarint, KindVarlong:
		d.idx[slot] = uint32(pos)
		return d.skipVarint(o.kind, pos, end)
	case KindString, KindBytes, KindRecords:
		d.idx[slot] = uint32(pos)
		return d.skipLenPrefixed(o.kind, flexible, pos, end)
	case KindStruct:
		if o.nullable {
			if pos >= end {
				return pos, short(pos, 1, end)
			}
			switch int8(d.buf[pos]) {
			case -1:
				d.idx[slot] = nullSlot
				return pos + 1, nil
			case 1:
				pos++
			default:
				return pos, &DecodeError{Offset: pos, Reason: fmt.Sprintf("bad struct presence marker %d", int8(d.buf[pos]))}
			}
		}
		cb := d.reserveBlocks(o.child, 1)
		d.idx[slot] = cb
		return d.walkStruct(o.child, pos, cb, end)
	case KindArray:
		return d.walkArray(o, flexible, pos, slot, end)
	}
	return pos, &DecodeError{Offset: pos, Reason: "unknown field kind " + o.kind.String()}
}

func (d *Decoder) skipVarint(k Kind, pos, end int) (int, *DecodeError) {
	v, n := ParseUvarint(d.buf[pos:end])
	if n == 0 {
		return pos, &DecodeError{Offset: pos, Reason: "truncated varint"}
	}
	if n < 0 || (k == KindVarint && v > math.MaxUint32) {
		return pos, &DecodeError{Offset: pos, Reason: "varint overflows its type"}
	}
	return pos + n, nil
}

// lenPrefix decodes a length or count prefix: int16 (strings) or int32
// (bytes, arrays) in classic versions, uvarint N+1 in flexible ones. It
// returns -1 for null.
func (d *Decoder) lenPrefix(k Kind, flexible bool, pos, end int) (n int, hdr int, err *DecodeError) {
	if flexible {
		u, w := uvarint32(d.buf[pos:end])
		if w <= 0 {
			return 0, 0, &DecodeError{Offset: pos, Reason: "bad compact length"}
		}
		return int(u) - 1, w, nil
	}
	if k == KindString {
		if end-pos < 2 {
			return 0, 0, short(pos, 2, end)
		}
		n = int(int16(be16(d.buf[pos:])))
		hdr = 2
	} else {
		if end-pos < 4 {
			return 0, 0, short(pos, 4, end)
		}
		n = int(int32(be32(d.buf[pos:])))
		hdr = 4
	}
	if n < -1 {
		return 0, 0, &DecodeError{Offset: pos, Reason: fmt.Sprintf("negative length %d", n)}
	}
	return n, hdr, nil
}

// skipLenPrefixed validates a string, bytes or records field. Null is
// accepted even where the schema says the field is not nullable: some
// brokers (Azure Event Hubs) send it, and readers treat it as empty.
func (d *Decoder) skipLenPrefixed(k Kind, flexible bool, pos, end int) (int, *DecodeError) {
	n, hdr, err := d.lenPrefix(k, flexible, pos, end)
	if err != nil {
		return pos, err
	}
	if n > end-pos-hdr {
		// Reported at the length prefix, like array counts.
		return pos, &DecodeError{Offset: pos, Reason: fmt.Sprintf("length %d exceeds the %d bytes left", n, end-pos-hdr)}
	}
	pos += hdr
	if n > 0 {
		pos += n
	}
	return pos, nil
}

func (d *Decoder) walkArray(o *op, flexible bool, pos int, slot uint32, end int) (int, *DecodeError) {
	n, hdr, err := d.lenPrefix(KindArray, flexible, pos, end)
	if err != nil {
		return pos, err
	}
	at := pos
	pos += hdr
	if n < 0 {
		d.idx[slot] = nullSlot
		return pos, nil
	}
	if min := o.elemMinSize(flexible); n > (end-pos)/min {
		return at, &DecodeError{Offset: at, Reason: fmt.Sprintf("%d elements of at least %d bytes exceed the %d bytes left", n, min, end-pos)}
	}
	switch {
	case o.elem == KindStruct:
		per := o.child.nslots + 1
		ab := d.reserve(1)
		d.reserveBlocks(o.child, n)
		d.idx[ab] = uint32(n)
		d.idx[slot] = ab
		for i := 0; i < n; i++ {
			if pos, err = d.walkStruct(o.child, pos, ab+1+uint32(i*per), end); err != nil {
				return pos, err.in("[" + strconv.Itoa(i) + "]")
			}
		}
	case o.elem.fixedSize() > 0:
		ab := d.reserve(2)
		d.idx[ab], d.idx[ab+1] = uint32(n), uint32(pos)
		d.idx[slot] = ab
		pos += n * o.elem.fixedSize() // bounded by the count check above
	default:
		ab := d.reserve(1 + n)
		d.idx[ab] = uint32(n)
		d.idx[slot] = ab
		for i := 0; i < n; i++ {
			d.idx[ab+1+uint32(i)] = uint32(pos)
			if o.elem == KindVarint || o.elem == KindVarlong {
				pos, err = d.skipVarint(o.elem, pos, end)
			} else {
				pos, err = d.skipLenPrefixed(o.elem, flexible, pos, end)
			}
			if err != nil {
				return pos, err.in("[" + strconv.Itoa(i) + "]")
			}
		}
	}
	return pos, nil
}
