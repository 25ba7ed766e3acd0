package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Legacy message sets (magic 0 and 1), as Kafka before 0.11 wrote them and
// as old data still sits in upgraded clusters. A message set is a run of
// (offset int64, size int32, message), with no count; a message is
//
//	crc uint32 (IEEE CRC-32 of the rest), magic int8, attributes int8,
//	timestamp int64 (magic 1 only), key (int32 length, -1 null), value.
//
// A compressed message is a wrapper whose value is a whole inner message
// set, compressed. In magic 1 the inner offsets are relative (0, 1, ...)
// and the wrapper carries the absolute offset of the last inner message; in
// magic 0 the inner offsets are absolute. Kafka 4 neither writes nor
// accepts these formats, so a restore converts them to v2 batches.

const (
	legacyAttrCodecMask     = 0x07
	legacyAttrLogAppendTime = 0x08
)

// PeekMagic returns the magic byte of the batch or message at the start of
// data (it sits at byte 16 in every format), or -1 if data is too short.
func PeekMagic(data []byte) int8 {
	if len(data) <= offMagic {
		return -1
	}
	return int8(data[offMagic])
}

// LegacyMessage is one (inner) message of a legacy message set. Key and
// Value borrow the set or the iterator's decompression buffer.
type LegacyMessage struct {
	Offset        int64
	Magic         int8
	Codec         Codec // of the wrapper the message came from, or None
	LogAppendTime bool
	Timestamp     int64 // -1 for magic 0
	Key, Value    []byte
}

// LegacyIter iterates the messages of a legacy message set, flattening
// compressed wrappers into their inner messages. Like Iter, it stops
// quietly at a truncated trailing message. It checks each message's CRC.
// Messages read from a compressed wrapper are valid until the iterator
// moves past that wrapper.
type LegacyIter struct {
	data      []byte
	pos       int
	d         *Decompressor
	buf       []byte
	inner     []byte // the decompressed wrapper being walked, if any
	innerPos  int
	wrapper   LegacyMessage // the wrapper of inner, for offsets and times
	innerBase int64         // absolute offset of relative inner offset 0
	msg       LegacyMessage
	err       error
	truncated bool
}

// NewLegacyIter iterates data with d decompressing wrappers (nil: a
// Decompressor of the iterator's own, with the default limit).
func NewLegacyIter(data []byte, d *Decompressor) *LegacyIter {
	if d == nil {
		d = new(Decompressor)
	}
	return &LegacyIter{data: data, d: d}
}

// Next advances to the next message.
func (it *LegacyIter) Next() bool {
	if it.err != nil {
		return false
	}
	for {
		if it.inner != nil {
			if it.innerPos < len(it.inner) {
				return it.nextInner()
			}
			it.inner = nil
		}
		if it.pos >= len(it.data) {
			return false
		}
		m, n, err := parseLegacy(it.data, it.pos)
		if err == errTruncated {
			it.truncated = true
			return false
		}
		if err != nil {
			it.err = err
			return false
		}
		it.pos += n
		if m.Codec == None {
			it.msg = m
			return true
		}
		if err := it.openWrapper(m); err != nil {
			it.err = err
			return false
		}
	}
}

// openWrapper decompresses a wrapper's inner set and works out the base of
// its relative offsets.
func (it *LegacyIter) openWrapper(w LegacyMessage) error {
	value := w.Value
	if w.Codec == LZ4 && w.Magic == 0 {
		// Kafka's magic 0 lz4 framing computed the frame header checksum
		// over the magic number too (fixed by KIP-57 in magic 1).
		value = fixKafkaLZ4Header(value)
	}
	var err error
	if it.buf, err = it.d.Decompress(it.buf, w.Codec, value); err != nil {
		return fmt.Errorf("record: legacy wrapper at offset %d: %w", w.Offset, err)
	}
	it.inner, it.innerPos, it.wrapper, it.innerBase = it.buf, 0, w, 0
	if w.Magic == 1 {
		// The wrapper's offset is that of the last inner message.
		var last int64 = -1
		for p := 0; p < len(it.inner); {
			m, n, err := parseLegacy(it.inner, p)
			if err != nil {
				return fmt.Errorf("record: legacy wrapper at offset %d: inner message at byte %d: %w", w.Offset, p, err)
			}
			last, p = m.Offset, p+n
		}
		it.innerBase = w.Offset - last
	}
	return nil
}

func (it *LegacyIter) nextInner() bool {
	m, n, err := parseLegacy(it.inner, it.innerPos)
	if err != nil {
		if err == errTruncated {
			err = &CorruptError{Offset: it.innerPos, Reason: "truncated message inside a compressed wrapper"}
		}
		it.err = fmt.Errorf("record: legacy wrapper at offset %d: %w", it.wrapper.Offset, err)
		return false
	}
	if m.Codec != None {
		it.err = fmt.Errorf("record: legacy wrapper at offset %d: nested compressed message", it.wrapper.Offset)
		return false
	}
	it.innerPos += n
	m.Offset += it.innerBase
	if m.Offset < 0 {
		it.err = fmt.Errorf("record: legacy wrapper at offset %d: inner message at offset %d", it.wrapper.Offset, m.Offset)
		return false
	}
	m.Codec = it.wrapper.Codec
	if it.wrapper.LogAppendTime {
		m.Timestamp, m.LogAppendTime = it.wrapper.Timestamp, true
	}
	it.msg = m
	return true
}

// Message returns the current message; the pointer is reused by Next.
func (it *LegacyIter) Message() *LegacyMessage { return &it.msg }

// Err returns the error that stopped the iteration, if any.
func (it *LegacyIter) Err() error { return it.err }

// Truncated reports whether the iteration stopped at an incomplete
// trailing message.
func (it *LegacyIter) Truncated() bool { return it.truncated }

// Pos is the byte position just past the last complete outer message read.
func (it *LegacyIter) Pos() int { return it.pos }

// parseLegacy reads the message at b[pos:], checking its size and CRC.
func parseLegacy(b []byte, pos int) (LegacyMessage, int, error) {
	var m LegacyMessage
	rest := b[pos:]
	if len(rest) < logOverhead {
		return m, 0, errTruncated
	}
	size := int32(binary.BigEndian.Uint32(rest[8:]))
	if size < 14 { // crc, magic, attributes, key and value lengths
		return m, 0, &CorruptError{Offset: pos + 8, Reason: fmt.Sprintf("message size %d is below the minimum 14", size)}
	}
	if int(size) > len(rest)-logOverhead {
		return m, 0, errTruncated
	}
	msg := rest[logOverhead : logOverhead+int(size)]
	m.Offset = int64(binary.BigEndian.Uint64(rest))
	if m.Offset < 0 {
		return m, 0, &CorruptError{Offset: pos, Reason: fmt.Sprintf("negative offset %d", m.Offset)}
	}
	if got, want := crc32.ChecksumIEEE(msg[4:]), binary.BigEndian.Uint32(msg); got != want {
		return m, 0, &CorruptError{Offset: pos + logOverhead, Reason: fmt.Sprintf("message CRC-32 is %08x, header says %08x", got, want)}
	}
	m.Magic = int8(msg[4])
	attrs := msg[5]
	m.Codec = Codec(attrs & legacyAttrCodecMask)
	p := 6
	m.Timestamp = -1
	switch m.Magic {
	case 0:
	case 1:
		if len(msg) < 22 {
			return m, 0, &CorruptError{Offset: pos + logOverhead, Reason: fmt.Sprintf("magic 1 message of %d bytes", len(msg))}
		}
		m.Timestamp = int64(binary.BigEndian.Uint64(msg[6:]))
		m.LogAppendTime = attrs&legacyAttrLogAppendTime != 0
		p = 14
	default:
		return m, 0, &CorruptError{Offset: pos + logOverhead + 4, Reason: fmt.Sprintf("magic %d in a legacy message set", m.Magic)}
	}
	var ok bool
	if m.Key, p, ok = int32Bytes(msg, p); !ok {
		return m, 0, &CorruptError{Offset: pos + logOverhead + p, Reason: "bad key length"}
	}
	if m.Value, p, ok = int32Bytes(msg, p); !ok {
		return m, 0, &CorruptError{Offset: pos + logOverhead + p, Reason: "bad value length"}
	}
	if p != len(msg) {
		return m, 0, &CorruptError{Offset: pos + logOverhead + p, Reason: fmt.Sprintf("%d bytes after the value", len(msg)-p)}
	}
	if m.Codec != None && m.Value == nil {
		return m, 0, &CorruptError{Offset: pos + logOverhead, Reason: "compressed wrapper with a null value"}
	}
	return m, logOverhead + int(size), nil
}

func int32Bytes(b []byte, p int) ([]byte, int, bool) {
	if len(b)-p < 4 {
		return nil, p, false
	}
	n := int32(binary.BigEndian.Uint32(b[p:]))
	p += 4
	if n == -1 {
		return nil, p, true
	}
	if n < 0 || int(n) > len(b)-p {
		return nil, p, false
	}
	return b[p : p+int(n) : p+int(n)], p + int(n), true
}

// fixKafkaLZ4Header returns a copy of an lz4 frame whose header checksum
// Kafka's magic 0 writer computed over the magic number as well as the
// frame descriptor, with the checksum recomputed the standard way.
func fixKafkaLZ4Header(frame []byte) []byte {
	const magicLen = 4
	if len(frame) < magicLen+3 {
		return frame
	}
	flg := frame[magicLen]
	descLen := 2 // FLG, BD
	if flg&0x08 != 0 {
		descLen += 8 // content size
	}
	if len(frame) < magicLen+descLen+1 {
		return frame
	}
	fixed := append([]byte(nil), frame...)
	fixed[magicLen+descLen] = byte(xxh32(fixed[magicLen:magicLen+descLen]) >> 8)
	return fixed
}

// xxh32 is XXH32 with seed 0, for the lz4 frame header checksum only.
func xxh32(b []byte) uint32 {
	const p1, p2, p3, p4, p5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
	h := uint32(p5) + uint32(len(b))
	for len(b) >= 4 {
		h += binary.LittleEndian.Uint32(b) * p3
		h = (h<<17 | h>>15) * p4
		b = b[4:]
	}
	for _, c := range b {
		h += uint32(c) * p5
		h = (h<<11 | h>>21) * p1
	}
	h ^= h >> 15
	h *= p2
	h ^= h >> 13
	h *= p3
	h ^= h >> 16
	return h
}

// ConvertLegacy converts a legacy message set to v2 batches appended to
// dst: the messages of each compressed wrapper become one batch compressed
// with the same codec (re-compressed by z), and runs of uncompressed
// messages become uncompressed batches of up to maxBatch bytes. Offsets,
// keys, values and timestamps are kept (magic 0 has no timestamps: -1);
// offset gaps are kept as offset deltas. It returns dst and the number of
// messages converted. A truncated trailing message is not converted.
func ConvertLegacy(dst, data []byte, d *Decompressor, z *Compressor, maxBatch int) ([]byte, int, error) {
	if maxBatch <= 0 {
		maxBatch = 1 << 20
	}
	it := NewLegacyIter(data, d)
	var b Builder
	open := false
	var cur Codec
	var base, last int64
	var lat bool
	count := 0
	flush := func() error {
		if !open {
			return nil
		}
		var err error
		dst, _, err = b.Finish()
		open = false
		return err
	}
	for it.Next() {
		m := it.Message()
		if open && m.Offset <= last {
			return dst, count, &CorruptError{Reason: fmt.Sprintf("offset %d follows offset %d", m.Offset, last)}
		}
		wrapperStart := m.Codec != None && it.innerStart()
		if open && (m.Codec != cur || m.LogAppendTime != lat || wrapperStart ||
			(m.Codec == None && b.Size() >= maxBatch) || m.Offset-base > 1<<31-1) {
			if err := flush(); err != nil {
				return dst, count, err
			}
		}
		if !open {
			h := NoProducer
			h.BaseOffset, h.Codec, h.LogAppendTime = m.Offset, m.Codec, m.LogAppendTime
			b.Reset(dst, h, z)
			open, cur, base, lat = true, m.Codec, m.Offset, m.LogAppendTime
		}
		b.AppendAt(int32(m.Offset-base), m.Timestamp, m.Key, m.Value, nil)
		last = m.Offset
		count++
	}
	if err := it.Err(); err != nil {
		return dst, count, err
	}
	return dst, count, flush()
}

// innerStart reports whether the current message is the first of a
// compressed wrapper.
func (it *LegacyIter) innerStart() bool {
	if it.inner == nil {
		return false
	}
	_, n, err := parseLegacy(it.inner, 0)
	return err == nil && it.innerPos == n
}

// LegacyEntry describes one top-level entry of a legacy message set: an
// uncompressed message, or a compressed wrapper with its inner messages.
// It is what a backup's index records of the entry.
type LegacyEntry struct {
	Magic int8
	// Attributes are the outer message's: the codec in bits 0-2 and the
	// timestamp type in bit 3, where a v2 batch has them too.
	Attributes int16
	// BaseOffset and LastOffset are the first and last message's offsets
	// (a wrapper's own offset is its last inner message's).
	BaseOffset, LastOffset int64
	// FirstTime is the first message's timestamp and MaxTime the largest
	// (after a LogAppendTime wrapper's override); -1 for magic 0.
	FirstTime, MaxTime int64
	Messages           int
}

// ParseLegacyEntry checks the legacy entry that is the whole of b (its
// CRC-32 and, for a wrapper, every inner message's) and describes it. d
// decompresses wrappers (nil: a Decompressor of its own).
func ParseLegacyEntry(b []byte, d *Decompressor) (LegacyEntry, error) {
	var e LegacyEntry
	if len(b) < logOverhead+14 {
		return e, &CorruptError{Offset: 0, Reason: fmt.Sprintf("legacy entry of %d bytes", len(b))}
	}
	if n := logOverhead + int(int32(binary.BigEndian.Uint32(b[8:]))); n != len(b) {
		return e, &CorruptError{Offset: 8, Reason: fmt.Sprintf("legacy entry says %d bytes, has %d", n, len(b))}
	}
	outer := int64(binary.BigEndian.Uint64(b))
	e.Magic, e.Attributes = int8(b[offMagic]), int16(b[offMagic+1])
	e.FirstTime, e.MaxTime = -1, -1
	it := NewLegacyIter(b, d)
	for it.Next() {
		m := it.Message()
		if e.Messages > 0 && m.Offset <= e.LastOffset {
			return e, &CorruptError{Offset: 0, Reason: fmt.Sprintf("legacy entry at offset %d: offset %d follows offset %d", outer, m.Offset, e.LastOffset)}
		}
		if e.Messages == 0 {
			e.BaseOffset, e.FirstTime = m.Offset, m.Timestamp
		}
		e.LastOffset, e.MaxTime = m.Offset, max(e.MaxTime, m.Timestamp)
		e.Messages++
	}
	switch {
	case it.Err() != nil:
		return e, it.Err()
	case it.Truncated():
		return e, &CorruptError{Offset: it.Pos(), Reason: "truncated legacy entry"}
	case e.Messages == 0:
		return e, &CorruptError{Offset: 0, Reason: fmt.Sprintf("legacy wrapper at offset %d holds no message", outer)}
	case e.LastOffset != outer:
		return e, &CorruptError{Offset: 0, Reason: fmt.Sprintf("legacy wrapper at offset %d ends with offset %d", outer, e.LastOffset)}
	}
	return e, nil
}
