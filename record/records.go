package record

import (
	"encoding/binary"
	"fmt"
)

// Record is one record of a batch. Key, Value and the headers are
// sub-slices of the batch (or of the Reader's decompression buffer): valid
// until the batch's buffer is released, or the Reader reads another batch.
// A null key or value is nil; an empty one is non-nil with length 0.
type Record struct {
	Offset     int64
	Timestamp  int64
	Key        []byte
	Value      []byte
	Attributes int8 // unused by Kafka so far; kept for exactness
	NumHeaders int
	headers    []byte // the encoded headers
}

// Headers returns an iterator over the record's headers.
func (r *Record) Headers() HeaderIter { return HeaderIter{data: r.headers, n: r.NumHeaders} }

// HeaderIter iterates a record's headers:
//
//	h := rec.Headers()
//	for h.Next() { use(h.Key(), h.Value()) }
type HeaderIter struct {
	data       []byte
	n, i, pos  int
	key, value []byte
}

// Next advances to the next header. The record was validated when it was
// read, so headers cannot be malformed here.
func (h *HeaderIter) Next() bool {
	if h.i >= h.n {
		return false
	}
	h.i++
	var ok bool
	h.key, h.pos, ok = lenBytes(h.data, h.pos)
	if !ok {
		return false
	}
	h.value, h.pos, _ = lenBytes(h.data, h.pos)
	return true
}

// Key is the header's key (UTF-8 by convention).
func (h *HeaderIter) Key() []byte { return h.key }

// Value is the header's value, nil when null.
func (h *HeaderIter) Value() []byte { return h.value }

// varint decodes a zig-zag varint at b[pos:], returning the value and the
// position after it, or pos -1 if it is truncated or longer than 10 bytes.
func varint(b []byte, pos int) (int64, int) {
	var u uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if pos >= len(b) {
			return 0, -1
		}
		c := b[pos]
		pos++
		u |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1), pos
		}
	}
	return 0, -1
}

// lenBytes reads a varint length (-1 for null) and that many bytes.
func lenBytes(b []byte, pos int) ([]byte, int, bool) {
	n, p := varint(b, pos)
	if p < 0 || n < -1 || n > int64(len(b)-p) {
		return nil, pos, false
	}
	if n < 0 {
		return nil, p, true
	}
	e := p + int(n)
	return b[p:e:e], e, true
}

// RecordIter iterates the records of one batch:
//
//	it, err := reader.Records(batch)
//	for it.Next() { rec := it.Record() }
//	if err := it.Err(); err != nil { ... }
type RecordIter struct {
	data          []byte
	pos           int
	remaining     int
	baseOffset    int64
	baseTimestamp int64
	logAppendTime int64 // the timestamp of every record, or -1
	rec           Record
	err           error
}

// Next reads the next record. It returns false after the last one, or on
// malformed data (see Err).
func (it *RecordIter) Next() bool {
	if it.err != nil {
		return false
	}
	if it.remaining == 0 {
		if it.pos != len(it.data) {
			it.err = &CorruptError{Offset: it.pos, Reason: fmt.Sprintf("%d bytes after the last record", len(it.data)-it.pos)}
		}
		return false
	}
	it.remaining--
	if err := it.read(); err != nil {
		it.err = err
		return false
	}
	return true
}

func (it *RecordIter) read() error {
	start := it.pos
	length, p := varint(it.data, it.pos)
	if p < 0 || length < 0 || length > int64(len(it.data)-p) {
		return &CorruptError{Offset: start, Reason: fmt.Sprintf("record length %d with %d bytes left", length, len(it.data)-p)}
	}
	end := p + int(length)
	b := it.data[:end]
	if p >= end {
		return &CorruptError{Offset: p, Reason: "empty record"}
	}
	r := &it.rec
	r.Attributes = int8(b[p])
	p++
	tsDelta, p := varint(b, p)
	if p < 0 {
		return &CorruptError{Offset: start, Reason: "bad timestamp delta"}
	}
	offDelta, p := varint(b, p)
	if p < 0 {
		return &CorruptError{Offset: start, Reason: "bad offset delta"}
	}
	var ok bool
	if r.Key, p, ok = lenBytes(b, p); !ok {
		return &CorruptError{Offset: p, Reason: "bad key length"}
	}
	if r.Value, p, ok = lenBytes(b, p); !ok {
		return &CorruptError{Offset: p, Reason: "bad value length"}
	}
	nh, p := varint(b, p)
	if p < 0 || nh < 0 || nh > int64(end-p)/2 {
		return &CorruptError{Offset: start, Reason: fmt.Sprintf("bad header count %d", nh)}
	}
	hstart := p
	for i := int64(0); i < nh; i++ {
		var key []byte
		if key, p, ok = lenBytes(b, p); !ok || key == nil {
			return &CorruptError{Offset: p, Reason: fmt.Sprintf("bad key of header %d", i)}
		}
		if _, p, ok = lenBytes(b, p); !ok {
			return &CorruptError{Offset: p, Reason: fmt.Sprintf("bad value of header %d", i)}
		}
	}
	if p != end {
		return &CorruptError{Offset: p, Reason: fmt.Sprintf("record has %d bytes after its headers", end-p)}
	}
	r.headers, r.NumHeaders = b[hstart:end:end], int(nh)
	r.Offset = it.baseOffset + offDelta
	r.Timestamp = it.baseTimestamp + tsDelta
	if it.logAppendTime >= 0 {
		r.Timestamp = it.logAppendTime
	}
	it.pos = end
	return nil
}

// Record returns the current record. The pointer is reused by Next.
func (it *RecordIter) Record() *Record { return &it.rec }

// Err returns the error that stopped the iteration, if any.
func (it *RecordIter) Err() error { return it.err }

// Remaining is how many records the batch header says are left.
func (it *RecordIter) Remaining() int { return it.remaining }

// A Reader reads the records of batches, decompressing compressed ones
// into its own buffer, which it reuses: records read through a Reader are
// valid until it reads the next batch. A Reader is not safe for concurrent
// use; keep one per goroutine or pool them. The zero value is ready.
type Reader struct {
	Decompressor
	buf []byte
}

// Records returns an iterator over b's records. An uncompressed batch is
// read in place; a compressed one is decompressed first (bounded by
// Decompressor.Max).
func (r *Reader) Records(b Batch) (RecordIter, error) {
	data := b.RecordsData()
	if c := b.Codec(); c != None {
		var err error
		if r.buf, err = r.Decompress(r.buf, c, data); err != nil {
			return RecordIter{}, fmt.Errorf("record: batch at offset %d: %w", b.BaseOffset(), err)
		}
		data = r.buf
	}
	return NewRecordIter(b, data), nil
}

// NewRecordIter iterates records whose uncompressed data (the records area,
// decompressed when needed) is data, with offsets and timestamps from b.
func NewRecordIter(b Batch, data []byte) RecordIter {
	it := RecordIter{data: data, remaining: int(max(b.NumRecords(), 0)), baseOffset: b.BaseOffset(),
		baseTimestamp: b.BaseTimestamp(), logAppendTime: -1}
	if b.LogAppendTime() {
		it.logAppendTime = b.MaxTimestamp()
	}
	return it
}

// Control record types, from the key of a control batch's record.
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// ControlRecord is the decoded key (and, for transaction markers, value)
// of a control batch's record.
type ControlRecord struct {
	Version          int16
	Type             int16 // ControlAbort, ControlCommit, or a KRaft type
	CoordinatorEpoch int32 // transaction markers only
}

// IsCommit reports a transaction commit marker.
func (c ControlRecord) IsCommit() bool { return c.Type == ControlCommit }

// IsAbort reports a transaction abort marker.
func (c ControlRecord) IsAbort() bool { return c.Type == ControlAbort }

// ParseControl decodes the control record rec of a control batch.
func ParseControl(rec *Record) (ControlRecord, error) {
	var c ControlRecord
	if len(rec.Key) < 4 {
		return c, &CorruptError{Reason: fmt.Sprintf("control record key of %d bytes, want 4", len(rec.Key))}
	}
	c.Version = int16(binary.BigEndian.Uint16(rec.Key))
	c.Type = int16(binary.BigEndian.Uint16(rec.Key[2:]))
	if (c.Type == ControlAbort || c.Type == ControlCommit) && len(rec.Value) >= 6 {
		c.CoordinatorEpoch = int32(binary.BigEndian.Uint32(rec.Value[2:]))
	}
	return c, nil
}
