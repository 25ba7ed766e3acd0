package record

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// appendLegacy appends one legacy message (with its offset and size).
func appendLegacy(dst []byte, offset int64, magic int8, attrs int8, ts int64, key, value []byte) []byte {
	var msg []byte
	msg = append(msg, 0, 0, 0, 0, byte(magic), byte(attrs))
	if magic == 1 {
		msg = binary.BigEndian.AppendUint64(msg, uint64(ts))
	}
	for _, b := range [][]byte{key, value} {
		if b == nil {
			msg = binary.BigEndian.AppendUint32(msg, 0xffffffff)
		} else {
			msg = binary.BigEndian.AppendUint32(msg, uint32(len(b)))
			msg = append(msg, b...)
		}
	}
	binary.BigEndian.PutUint32(msg, crc32.ChecksumIEEE(msg[4:]))
	dst = binary.BigEndian.AppendUint64(dst, uint64(offset))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(msg)))
	return append(dst, msg...)
}

type legacyCase struct {
	offset     int64
	ts         int64
	key, value []byte
}

var legacyRecs = []legacyCase{
	{offset: 0, ts: 1000, key: []byte("a"), value: []byte("one")},
	{offset: 1, ts: 1001, key: nil, value: []byte("two")},
	{offset: 2, ts: 1002, key: []byte("c"), value: nil},
	{offset: 5, ts: 1005, key: []byte{}, value: []byte{}}, // a compaction gap before it
}

// legacySet builds a message set as a broker stores it: uncompressed, or
// one compressed wrapper holding every message.
func legacySet(t *testing.T, magic int8, c Codec, logAppend bool) []byte {
	t.Helper()
	if c == None {
		var set []byte
		for _, r := range legacyRecs {
			set = appendLegacy(set, r.offset, magic, 0, r.ts, r.key, r.value)
		}
		return set
	}
	var inner []byte
	for _, r := range legacyRecs {
		off := r.offset // magic 0: absolute inner offsets
		if magic == 1 {
			off = r.offset - legacyRecs[0].offset // magic 1: relative, gaps kept
		}
		inner = appendLegacy(inner, off, magic, 0, r.ts, r.key, r.value)
	}
	var z Compressor
	comp, err := z.Compress(nil, c, inner)
	if err != nil {
		t.Fatal(err)
	}
	if c == LZ4 && magic == 0 {
		// Write the header checksum the way Kafka's magic 0 writer did:
		// over the lz4 magic number too.
		comp[6] = byte(xxh32(comp[0:6]) >> 8)
	}
	attrs := int8(c)
	wts := int64(1005)
	if logAppend {
		attrs |= legacyAttrLogAppendTime
		wts = 99999
	}
	last := legacyRecs[len(legacyRecs)-1].offset
	return appendLegacy(nil, last, magic, attrs, wts, nil, comp)
}

func TestLegacyIterAndConvert(t *testing.T) {
	for _, magic := range []int8{0, 1} {
		for _, c := range []Codec{None, Gzip, Snappy, LZ4} {
			for _, logAppend := range []bool{false, true} {
				if logAppend && (magic == 0 || c == None) {
					continue
				}
				set := legacySet(t, magic, c, logAppend)
				if PeekMagic(set) != magic {
					t.Fatalf("PeekMagic %d", PeekMagic(set))
				}
				wantTS := func(i int) int64 {
					switch {
					case magic == 0:
						return -1
					case logAppend:
						return 99999
					}
					return legacyRecs[i].ts
				}
				it := NewLegacyIter(set, nil)
				i := 0
				for it.Next() {
					m, w := it.Message(), legacyRecs[i]
					if m.Offset != w.offset || m.Timestamp != wantTS(i) || !sameBytes(m.Key, w.key) || !sameBytes(m.Value, w.value) || m.Codec != c {
						t.Fatalf("magic %d %s: message %d: got %+v", magic, c, i, m)
					}
					i++
				}
				if it.Err() != nil || i != len(legacyRecs) {
					t.Fatalf("magic %d %s: %d messages, %v", magic, c, i, it.Err())
				}

				v2, n, err := ConvertLegacy(nil, set, nil, nil, 0)
				if err != nil || n != len(legacyRecs) {
					t.Fatalf("magic %d %s: convert: %d, %v", magic, c, n, err)
				}
				bi := NewIter(v2)
				i = 0
				for bi.Next() {
					b := bi.Batch()
					if err := b.Validate(); err != nil {
						t.Fatal(err)
					}
					if b.Codec() != c || b.LogAppendTime() != logAppend {
						t.Fatalf("converted batch: codec %s, log append %v", b.Codec(), b.LogAppendTime())
					}
					var r Reader
					ri, err := r.Records(b)
					if err != nil {
						t.Fatal(err)
					}
					for ri.Next() {
						rec, w := ri.Record(), legacyRecs[i]
						if rec.Offset != w.offset || rec.Timestamp != wantTS(i) || !sameBytes(rec.Key, w.key) || !sameBytes(rec.Value, w.value) {
							t.Fatalf("magic %d %s: converted record %d: %+v", magic, c, i, rec)
						}
						i++
					}
					if ri.Err() != nil {
						t.Fatal(ri.Err())
					}
					if b.LastOffset() != legacyRecs[i-1].offset {
						t.Fatalf("last offset %d", b.LastOffset())
					}
				}
				if i != len(legacyRecs) || bi.Err() != nil {
					t.Fatalf("converted %d records, %v", i, bi.Err())
				}
			}
		}
	}
}

func TestLegacyCorruption(t *testing.T) {
	set := legacySet(t, 1, None, false)
	bad := append([]byte{}, set...)
	bad[20] ^= 1 // inside the first message, after its CRC
	it := NewLegacyIter(bad, nil)
	if it.Next() || it.Err() == nil {
		t.Fatal("bad CRC accepted")
	}
	it = NewLegacyIter(set[:len(set)-2], nil)
	n := 0
	for it.Next() {
		n++
	}
	if it.Err() != nil || !it.Truncated() || n != len(legacyRecs)-1 {
		t.Fatalf("truncated set: n=%d err=%v", n, it.Err())
	}
	if !bytes.Equal(set[:it.Pos()], set[:len(set)-len(appendLegacy(nil, 5, 1, 0, 1005, []byte{}, []byte{}))]) {
		t.Fatal("Pos does not end at the last complete message")
	}
}
