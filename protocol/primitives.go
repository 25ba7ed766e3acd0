package protocol

import (
	"encoding/binary"
	"math/bits"
)

// Kafka uses two varint encodings: unsigned LEB128 varints for compact
// lengths and tag numbers (KIP-482; a compact length stores N+1 so that 0
// means null), and zig-zag signed varints for the varint/varlong field types
// and inside record batches. They are easy to confuse; the names here say
// which is which.

// AppendUvarint appends v as an unsigned varint.
func AppendUvarint(dst []byte, v uint64) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// UvarintLen is the encoded size of v as an unsigned varint.
func UvarintLen(v uint64) int {
	return (bits.Len64(v|1) + 6) / 7
}

// AppendVarint appends v as a zig-zag varint.
func AppendVarint(dst []byte, v int64) []byte {
	return AppendUvarint(dst, uint64(v<<1)^uint64(v>>63))
}

// VarintLen is the encoded size of v as a zig-zag varint.
func VarintLen(v int64) int { return UvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

// ParseUvarint decodes an unsigned varint of at most 64 bits from b. n is the
// number of bytes read: 0 if b is too short, -1 if the value overflows.
func ParseUvarint(b []byte) (v uint64, n int) {
	if len(b) > 0 && b[0] < 0x80 { // the common case: one byte
		return uint64(b[0]), 1
	}
	return binary.Uvarint(b)
}

// ParseVarint decodes a zig-zag varint from b, with n as for ParseUvarint.
func ParseVarint(b []byte) (int64, int) {
	u, n := ParseUvarint(b)
	return int64(u>>1) ^ -int64(u&1), n
}

// uvarint32 decodes an unsigned varint that must fit in 32 bits.
func uvarint32(b []byte) (uint32, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint32(b[0]), 1
	}
	var v uint32
	for i := 0; i < 5; i++ {
		if i >= len(b) {
			return 0, 0
		}
		c := b[i]
		if i == 4 && c > 0x0f {
			return 0, -1
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, -1
}

func appendInt16(dst []byte, v int16) []byte { return binary.BigEndian.AppendUint16(dst, uint16(v)) }
func appendInt32(dst []byte, v int32) []byte { return binary.BigEndian.AppendUint32(dst, uint32(v)) }
func appendInt64(dst []byte, v int64) []byte { return binary.BigEndian.AppendUint64(dst, uint64(v)) }

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func putBE16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }
func putBE32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
func putBE64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }
