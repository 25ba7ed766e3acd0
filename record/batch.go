package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Record batch v2 layout (magic 2), all big-endian, offsets from the start
// of the batch. The CRC covers everything from the attributes to the end;
// the base offset, length, partition leader epoch and magic are outside it,
// which is what lets a broker (and a restore) renumber batches for free.
const (
	offBaseOffset      = 0  // int64
	offBatchLength     = 8  // int32: bytes after this field
	offLeaderEpoch     = 12 // int32
	offMagic           = 16 // int8
	offCRC             = 17 // uint32, CRC-32C of [21, end)
	offAttributes      = 21 // int16
	offLastOffsetDelta = 23 // int32
	offBaseTimestamp   = 27 // int64
	offMaxTimestamp    = 35 // int64
	offProducerID      = 43 // int64
	offProducerEpoch   = 51 // int16
	offBaseSequence    = 53 // int32
	offNumRecords      = 57 // int32
	offRecords         = 61

	// HeaderSize is the size of a v2 batch header, before the records.
	HeaderSize = offRecords
	// logOverhead is the base offset and length that precede every batch
	// and every legacy message.
	logOverhead = 12
	// minBatchLength is the batch length of a batch with no records.
	minBatchLength = HeaderSize - logOverhead
)

// Attribute bits of a v2 batch.
const (
	attrCodecMask     = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
	attrDeleteHorizon = 0x40
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Batch is a view of one record batch (magic 2): its bytes, from the base
// offset to the last record, exactly as stored or sent. Its accessors read
// the header in place; setters in rewrite.go change it in place. A Batch
// from an Iter has been checked for length and magic, not for CRC (see
// Validate). Accessors on a Batch shorter than HeaderSize panic: a Batch
// must come from Iter, Parse or a Builder.
type Batch []byte

// Parse checks that b holds exactly one complete v2 batch (length, magic and
// CRC) and returns it as a Batch.
func Parse(b []byte) (Batch, error) {
	n, err := batchSize(b, 0)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, &CorruptError{Offset: n, Reason: fmt.Sprintf("%d bytes after the batch", len(b)-n)}
	}
	batch := Batch(b)
	if err := batch.Validate(); err != nil {
		return nil, err
	}
	return batch, nil
}

// batchSize returns the total size of the batch at b[pos:], checking its
// length field and magic. It returns errTruncated when the batch does not
// fit in b.
func batchSize(b []byte, pos int) (int, error) {
	rest := b[pos:]
	if len(rest) < offMagic+1 {
		return 0, errTruncated
	}
	length := int32(binary.BigEndian.Uint32(rest[offBatchLength:]))
	if length < minBatchLength {
		return 0, &CorruptError{Offset: pos + offBatchLength, Reason: fmt.Sprintf("batch length %d is below the minimum %d", length, minBatchLength)}
	}
	if m := int8(rest[offMagic]); m != 2 {
		return 0, &CorruptError{Offset: pos + offMagic, Reason: fmt.Sprintf("magic %d where a v2 batch was expected", m)}
	}
	total := int(length) + logOverhead
	if total > len(rest) {
		return 0, errTruncated
	}
	return total, nil
}

// legacySize is batchSize for a top-level legacy message.
func legacySize(b []byte, pos int) (int, error) {
	rest := b[pos:]
	size := int32(binary.BigEndian.Uint32(rest[offBatchLength:]))
	if size < 14 {
		return 0, &CorruptError{Offset: pos + offBatchLength, Reason: fmt.Sprintf("message size %d is below the minimum 14", size)}
	}
	total := int(size) + logOverhead
	if total > len(rest) {
		return 0, errTruncated
	}
	return total, nil
}

var errTruncated = errors.New("record: truncated batch")

// CorruptError reports a malformed batch, record or message, and where.
type CorruptError struct {
	Offset int // byte offset in the input that was being read
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("record: corrupt data at byte %d: %s", e.Offset, e.Reason)
}

func (b Batch) i16(at int) int16 { return int16(binary.BigEndian.Uint16(b[at:])) }
func (b Batch) i32(at int) int32 { return int32(binary.BigEndian.Uint32(b[at:])) }
func (b Batch) i64(at int) int64 { return int64(binary.BigEndian.Uint64(b[at:])) }

// BaseOffset is the offset of the batch's first record.
func (b Batch) BaseOffset() int64 { return b.i64(offBaseOffset) }

// BatchLength is the length field: the batch's size minus 12.
func (b Batch) BatchLength() int32 { return b.i32(offBatchLength) }

// PartitionLeaderEpoch is the leader epoch the broker stamped on the batch.
func (b Batch) PartitionLeaderEpoch() int32 { return b.i32(offLeaderEpoch) }

// Magic is the format version: 2.
func (b Batch) Magic() int8 { return int8(b[offMagic]) }

// CRC is the stored CRC-32C.
func (b Batch) CRC() uint32 { return binary.BigEndian.Uint32(b[offCRC:]) }

// Attributes is the raw attributes field.
func (b Batch) Attributes() int16 { return b.i16(offAttributes) }

// Codec is the compression of the records.
func (b Batch) Codec() Codec { return Codec(b.Attributes() & attrCodecMask) }

// LogAppendTime reports whether timestamps are the broker's append time.
func (b Batch) LogAppendTime() bool { return b.Attributes()&attrLogAppendTime != 0 }

// IsTransactional reports whether the batch belongs to a transaction.
func (b Batch) IsTransactional() bool { return b.Attributes()&attrTransactional != 0 }

// IsControl reports whether the batch holds a control record (a
// transaction commit or abort marker, or a KRaft control record).
func (b Batch) IsControl() bool { return b.Attributes()&attrControl != 0 }

// HasDeleteHorizon reports whether BaseTimestamp holds the delete horizon
// set by compaction instead of the first timestamp.
func (b Batch) HasDeleteHorizon() bool { return b.Attributes()&attrDeleteHorizon != 0 }

// LastOffsetDelta is the last record's offset minus the base offset.
func (b Batch) LastOffsetDelta() int32 { return b.i32(offLastOffsetDelta) }

// LastOffset is the offset of the batch's last record. The next fetch of
// the partition starts after it, even when compaction removed records.
func (b Batch) LastOffset() int64 { return b.BaseOffset() + int64(b.LastOffsetDelta()) }

// BaseTimestamp is the first record's timestamp (or the delete horizon).
func (b Batch) BaseTimestamp() int64 { return b.i64(offBaseTimestamp) }

// MaxTimestamp is the largest timestamp in the batch.
func (b Batch) MaxTimestamp() int64 { return b.i64(offMaxTimestamp) }

// ProducerID is the idempotent or transactional producer's id, or -1.
func (b Batch) ProducerID() int64 { return b.i64(offProducerID) }

// ProducerEpoch is the producer's epoch, or -1.
func (b Batch) ProducerEpoch() int16 { return b.i16(offProducerEpoch) }

// BaseSequence is the first record's sequence number, or -1.
func (b Batch) BaseSequence() int32 { return b.i32(offBaseSequence) }

// NumRecords is the record count in the header.
func (b Batch) NumRecords() int32 { return b.i32(offNumRecords) }

// RecordsData is the records area: the records, compressed as a whole when
// Codec is not None. It borrows the batch.
func (b Batch) RecordsData() []byte { return b[offRecords:len(b):len(b)] }

// ComputeCRC computes the CRC-32C the batch should carry.
func (b Batch) ComputeCRC() uint32 { return crc32.Checksum(b[offAttributes:], castagnoli) }

// Validate checks the batch's length field, magic and CRC.
func (b Batch) Validate() error {
	if err := b.ValidateFraming(); err != nil {
		return err
	}
	if got, want := b.ComputeCRC(), b.CRC(); got != want {
		return &CorruptError{Offset: offCRC, Reason: fmt.Sprintf("CRC-32C is %08x, header says %08x", got, want)}
	}
	return nil
}

// ValidateFraming checks what Validate checks but the CRC: the length
// field, magic, record count and last offset delta. It is for batches
// whose CRC has been checked already (a client.Fetcher checks every batch
// it delivers), so that a batch's bytes are not read twice.
func (b Batch) ValidateFraming() error {
	if len(b) < HeaderSize {
		return &CorruptError{Offset: 0, Reason: fmt.Sprintf("batch of %d bytes is shorter than its header", len(b))}
	}
	if n := int(b.BatchLength()) + logOverhead; n != len(b) {
		return &CorruptError{Offset: offBatchLength, Reason: fmt.Sprintf("length field says %d bytes, batch has %d", n, len(b))}
	}
	if b.Magic() != 2 {
		return &CorruptError{Offset: offMagic, Reason: fmt.Sprintf("magic %d", b.Magic())}
	}
	if b.NumRecords() < 0 || b.LastOffsetDelta() < 0 {
		return &CorruptError{Offset: offLastOffsetDelta, Reason: fmt.Sprintf("negative record count %d or last offset delta %d", b.NumRecords(), b.LastOffsetDelta())}
	}
	return nil
}

// Iter walks the batches of a record set: a fetch response's records field
// or a stored segment. A batch cut short at the end (brokers cut fetch
// responses at their size limit) ends the iteration quietly and is reported
// by Truncated, not as an error. Iter checks framing only; call
// Batch.Validate for the CRC.
//
//	it := record.NewIter(data)
//	for it.Next() {
//		b := it.Batch()
//	}
//	if err := it.Err(); err != nil { ... }
type Iter struct {
	data      []byte
	pos       int
	cur       Batch
	err       error
	truncated bool
	legacy    bool // NewLogIter
}

// NewIter returns an iterator over the batches in data.
func NewIter(data []byte) Iter { return Iter{data: data} }

// NewLogIter returns an iterator over the entries of a log that may hold
// legacy message sets before its v2 batches, as a log whose message
// format was upgraded does: each entry is a v2 batch or one top-level
// legacy message (Magic tells which; only Magic and BaseOffset, the
// entry's own offset, may be read from a legacy one, see
// ParseLegacyEntry).
func NewLogIter(data []byte) Iter { return Iter{data: data, legacy: true} }

// Reset makes it iterate over data, reusing it.
func (it *Iter) Reset(data []byte) { *it = Iter{data: data, legacy: it.legacy} }

// Next advances to the next batch. It returns false at the end, at a
// truncated trailing batch, or on malformed framing (see Err).
func (it *Iter) Next() bool {
	if it.err != nil || it.pos >= len(it.data) {
		return false
	}
	var n int
	var err error
	if it.legacy && PeekMagic(it.data[it.pos:]) < 2 && PeekMagic(it.data[it.pos:]) >= 0 {
		n, err = legacySize(it.data, it.pos)
	} else {
		n, err = batchSize(it.data, it.pos)
	}
	if err == errTruncated {
		it.truncated = true
		return false
	}
	if err != nil {
		it.err = err
		return false
	}
	it.cur = Batch(it.data[it.pos : it.pos+n : it.pos+n])
	it.pos += n
	return true
}

// Batch returns the current batch; it borrows the data.
func (it *Iter) Batch() Batch { return it.cur }

// Pos is the offset in the data just past the current batch: the end of the
// complete batches so far.
func (it *Iter) Pos() int { return it.pos }

// Err returns the framing error that stopped the iteration, if any.
func (it *Iter) Err() error { return it.err }

// Truncated reports whether the iteration stopped at an incomplete
// trailing batch; Pos then says where the complete batches end.
func (it *Iter) Truncated() bool { return it.truncated }
