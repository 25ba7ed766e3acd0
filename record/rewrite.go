package record

import (
	"encoding/binary"
	"hash/crc32"
)

// In-place header rewrites, for restores and producers that re-send
// batches: the payload is never touched.
//
// The base offset and partition leader epoch lie outside the CRC: setting
// them costs two stores. Every other field is covered by the CRC-32C of
// [21, end). CRC-32C is linear over GF(2): for messages A and B of equal
// length, crc(A) ^ crc(B) = crc0(A ^ B), where crc0 is the CRC with no
// initial or final inversion. A header rewrite changes a few bytes near the
// start, so A ^ B is zero except over those bytes, and crc0 of "changed
// bytes followed by n zero bytes" is crc0(changed bytes) multiplied by
// x^(8n) modulo the CRC polynomial. That costs O(log n) no matter how large
// the batch is, instead of a pass over every byte.

// SetBaseOffset sets the base offset. The CRC does not cover it.
func (b Batch) SetBaseOffset(o int64) { binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(o)) }

// SetPartitionLeaderEpoch sets the leader epoch. The CRC does not cover it.
func (b Batch) SetPartitionLeaderEpoch(e int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(e))
}

// ProducerState is the part of the header an idempotent or transactional
// producer owns.
type ProducerState struct {
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
	Transactional bool
}

// SetProducer rewrites producer id, epoch, base sequence and the
// transactional bit, and patches the CRC.
func (b Batch) SetProducer(p ProducerState) {
	var old [offNumRecords - offAttributes]byte
	copy(old[:], b[offAttributes:offNumRecords])
	be := binary.BigEndian
	be.PutUint64(b[offProducerID:], uint64(p.ProducerID))
	be.PutUint16(b[offProducerEpoch:], uint16(p.ProducerEpoch))
	be.PutUint32(b[offBaseSequence:], uint32(p.BaseSequence))
	attrs := be.Uint16(b[offAttributes:]) &^ attrTransactional
	if p.Transactional {
		attrs |= attrTransactional
	}
	be.PutUint16(b[offAttributes:], attrs)
	b.patchCRC(offAttributes, old[:])
}

// SetAttributes sets the attributes field and patches the CRC. Changing
// the codec bits without changing the payload corrupts the batch.
func (b Batch) SetAttributes(a int16) { b.setField16(offAttributes, uint16(a)) }

// SetLastOffsetDelta sets the last offset delta and patches the CRC.
func (b Batch) SetLastOffsetDelta(d int32) { b.setField32(offLastOffsetDelta, uint32(d)) }

// SetMaxTimestamp sets the max timestamp and patches the CRC.
func (b Batch) SetMaxTimestamp(ts int64) {
	var old [8]byte
	copy(old[:], b[offMaxTimestamp:])
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(ts))
	b.patchCRC(offMaxTimestamp, old[:])
}

// SetBaseTimestamp sets the base timestamp and patches the CRC. Record
// timestamps are deltas from it, so they all move with it.
func (b Batch) SetBaseTimestamp(ts int64) {
	var old [8]byte
	copy(old[:], b[offBaseTimestamp:])
	binary.BigEndian.PutUint64(b[offBaseTimestamp:], uint64(ts))
	b.patchCRC(offBaseTimestamp, old[:])
}

func (b Batch) setField16(at int, v uint16) {
	var old [2]byte
	copy(old[:], b[at:])
	binary.BigEndian.PutUint16(b[at:], v)
	b.patchCRC(at, old[:])
}

func (b Batch) setField32(at int, v uint32) {
	var old [4]byte
	copy(old[:], b[at:])
	binary.BigEndian.PutUint32(b[at:], v)
	b.patchCRC(at, old[:])
}

// RecomputeCRC recomputes the CRC over the whole batch.
func (b Batch) RecomputeCRC() {
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}

// patchCRC updates the CRC after the bytes at b[at:at+len(old)], formerly
// old, were changed. Small batches are simply recomputed: below a few
// hundred bytes a straight CRC is as cheap as the patch.
func (b Batch) patchCRC(at int, old []byte) {
	if len(b) < patchThreshold {
		b.RecomputeCRC()
		return
	}
	// crc0 of the changed bytes (table-driven, no initial or final
	// inversion), then shifted over the bytes after them.
	var c uint32
	for i, o := range old {
		c = castagnoli[byte(c)^o^b[at+i]] ^ c>>8
	}
	c = multModP(x8nModP(len(b)-at-len(old)), c)
	crc := binary.BigEndian.Uint32(b[offCRC:]) ^ c
	binary.BigEndian.PutUint32(b[offCRC:], crc)
}

// patchThreshold is the batch size from which patching beats recomputing,
// measured by BenchmarkBatchRewrite.
const patchThreshold = 512

// castagnoliPoly is the reflected CRC-32C polynomial.
const castagnoliPoly = 0x82f63b78

// multModP multiplies a and b modulo the CRC polynomial, in the reflected
// bit order CRC-32C uses (x^0 is the top bit).
func multModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				break
			}
		}
		if b&1 != 0 {
			b = b>>1 ^ castagnoliPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// x2n[k] is x^(2^k) modulo the polynomial.
var x2n = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = multModP(p, p)
	}
	return t
}()

// x8nModP returns x^(8n) modulo the polynomial: the operator that appends
// n zero bytes to a raw CRC.
func x8nModP(n int) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n > 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = multModP(x2n[k&31], p)
		}
	}
	return p
}
