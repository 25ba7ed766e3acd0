package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/ktape/ktape/protocol"
)

// Header is a record header. A nil Value is a null value.
type Header struct {
	Key   []byte
	Value []byte
}

// BatchHeader holds the header fields a Builder writes; the timestamps,
// counts and CRC come from the records. Producer fields are written as
// given: start from NoProducer for a batch of a plain producer.
type BatchHeader struct {
	BaseOffset           int64
	PartitionLeaderEpoch int32
	Codec                Codec
	LogAppendTime        bool
	Transactional        bool
	Control              bool
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
}

// NoProducer is the header of a batch from a producer that is neither
// idempotent nor transactional.
var NoProducer = BatchHeader{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}

// A Builder writes one record batch straight into a caller's buffer:
// Reset with the header, Append records (each written once, in place, in
// its final layout), then Finish to seal the header and CRC. With enough
// capacity in the buffers it allocates nothing. A Builder is reusable and
// not safe for concurrent use.
type Builder struct {
	h       BatchHeader
	dst     []byte // output; the batch starts at start
	start   int
	recs    []byte // records before compression, for compressed batches
	n       int32
	lastOD  int32
	baseTS  int64
	maxTS   int64
	started bool
	z       *Compressor
}

// Reset starts a batch with header h, to be appended to dst. Records of a
// compressed batch are staged in an internal buffer and compressed with z
// by Finish (z may be nil for uncompressed batches; a nil z with a codec
// uses a Compressor of the Builder's own).
func (b *Builder) Reset(dst []byte, h BatchHeader, z *Compressor) {
	b.h, b.dst, b.start = h, dst, len(dst)
	b.recs, b.n, b.lastOD, b.started = b.recs[:0], 0, 0, false
	if h.Codec != None && z == nil {
		if b.z == nil {
			b.z = new(Compressor)
		}
		z = b.z
	}
	b.z = z
	b.dst = grow(b.dst, HeaderSize) // filled in by Finish
}

// NumRecords is the number of records appended so far.
func (b *Builder) NumRecords() int { return int(b.n) }

// Size is the size of the batch so far (uncompressed).
func (b *Builder) Size() int { return len(b.dst) - b.start + len(b.recs) }

// Append adds a record with the next offset (deltas 0, 1, 2, ...).
func (b *Builder) Append(timestamp int64, key, value []byte, headers []Header) {
	od := b.n
	if b.n > 0 {
		od = b.lastOD + 1
	}
	b.AppendAt(od, timestamp, key, value, headers)
}

// AppendAt adds a record with an explicit offset delta, for batches whose
// offsets have gaps (compacted or converted data). Deltas must increase.
func (b *Builder) AppendAt(offsetDelta int32, timestamp int64, key, value []byte, headers []Header) {
	if !b.started {
		b.baseTS, b.maxTS, b.started = timestamp, timestamp, true
	}
	b.maxTS = max(b.maxTS, timestamp)
	tsDelta := timestamp - b.baseTS
	size := 1 + protocol.VarintLen(tsDelta) + protocol.VarintLen(int64(offsetDelta)) +
		bytesLen(key) + bytesLen(value) + protocol.VarintLen(int64(len(headers)))
	for i := range headers {
		size += bytesLen(headers[i].Key) + bytesLen(headers[i].Value)
	}
	out := &b.dst
	if b.h.Codec != None {
		out = &b.recs
	}
	w := *out
	w = protocol.AppendVarint(w, int64(size))
	w = append(w, 0) // attributes
	w = protocol.AppendVarint(w, tsDelta)
	w = protocol.AppendVarint(w, int64(offsetDelta))
	w = appendBytes(w, key)
	w = appendBytes(w, value)
	w = protocol.AppendVarint(w, int64(len(headers)))
	for i := range headers {
		w = appendBytes(w, headers[i].Key)
		w = appendBytes(w, headers[i].Value)
	}
	*out = w
	b.n++
	b.lastOD = offsetDelta
}

// Finish compresses the records if needed, writes the header and CRC, and
// returns dst extended by the batch, and the batch itself. A batch with no
// records is valid Kafka only as a control batch; Finish writes it anyway.
func (b *Builder) Finish() ([]byte, Batch, error) {
	if b.h.Codec != None {
		var err error
		if b.dst, err = b.z.Compress(b.dst, b.h.Codec, b.recs); err != nil {
			return b.dst[:b.start], nil, err
		}
	}
	batch := b.dst[b.start:]
	if len(batch)-logOverhead > math.MaxInt32 {
		return b.dst[:b.start], nil, fmt.Errorf("record: batch of %d bytes is too large", len(batch))
	}
	be := binary.BigEndian
	h := &b.h
	be.PutUint64(batch[offBaseOffset:], uint64(h.BaseOffset))
	be.PutUint32(batch[offBatchLength:], uint32(len(batch)-logOverhead))
	be.PutUint32(batch[offLeaderEpoch:], uint32(h.PartitionLeaderEpoch))
	batch[offMagic] = 2
	attrs := uint16(h.Codec) & attrCodecMask
	if h.LogAppendTime {
		attrs |= attrLogAppendTime
	}
	if h.Transactional {
		attrs |= attrTransactional
	}
	if h.Control {
		attrs |= attrControl
	}
	be.PutUint16(batch[offAttributes:], attrs)
	be.PutUint32(batch[offLastOffsetDelta:], uint32(b.lastOD))
	if !b.started {
		b.baseTS, b.maxTS = -1, -1
	}
	be.PutUint64(batch[offBaseTimestamp:], uint64(b.baseTS))
	be.PutUint64(batch[offMaxTimestamp:], uint64(b.maxTS))
	be.PutUint64(batch[offProducerID:], uint64(h.ProducerID))
	be.PutUint16(batch[offProducerEpoch:], uint16(h.ProducerEpoch))
	be.PutUint32(batch[offBaseSequence:], uint32(h.BaseSequence))
	be.PutUint32(batch[offNumRecords:], uint32(b.n))
	be.PutUint32(batch[offCRC:], crc32.Checksum(batch[offAttributes:], castagnoli))
	return b.dst, Batch(batch[:len(batch):len(batch)]), nil
}

// AppendControl appends a transaction marker batch (commit or abort) for
// producer id/epoch at offset, as a transaction coordinator writes it.
func AppendControl(dst []byte, offset int64, producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32, timestamp int64) []byte {
	typ := ControlAbort
	if commit {
		typ = ControlCommit
	}
	var key [4]byte
	binary.BigEndian.PutUint16(key[2:], uint16(typ))
	var value [6]byte
	binary.BigEndian.PutUint32(value[2:], uint32(coordinatorEpoch))
	var b Builder
	b.Reset(dst, BatchHeader{BaseOffset: offset, Transactional: true, Control: true,
		ProducerID: producerID, ProducerEpoch: producerEpoch, BaseSequence: -1}, nil)
	b.Append(timestamp, key[:], value[:], nil)
	out, _, _ := b.Finish() // uncompressed: cannot fail
	return out
}

// bytesLen is the encoded size of a varint-length-prefixed byte string
// (-1 for nil).
func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return protocol.VarintLen(int64(len(b))) + len(b)
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return protocol.AppendVarint(dst, -1)
	}
	return append(protocol.AppendVarint(dst, int64(len(b))), b...)
}
