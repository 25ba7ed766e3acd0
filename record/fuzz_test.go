package record

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"
)

// seedBatches returns a few valid record sets, every codec, for the fuzz
// corpora.
func seedBatches(f *testing.F) [][]byte {
	rng := rand.New(rand.NewSource(7))
	var out [][]byte
	for _, c := range codecs {
		h := NoProducer
		h.Codec = c
		out = append(out, buildBatch(f, h, testRecords(rng, 5)))
	}
	out = append(out, AppendControl(nil, 3, 1, 0, true, 0, 0))
	return out
}

// FuzzBatches: iterating batches and their records never panics, stays
// within the decompression limit, and accepts only what validates.
func FuzzBatches(f *testing.F) {
	for _, b := range seedBatches(f) {
		f.Add(b)
		f.Add(append(append([]byte{}, b...), b[:len(b)/2]...)) // truncated tail
	}
	r := Reader{Decompressor: Decompressor{Max: 1 << 20}}
	f.Fuzz(func(t *testing.T, data []byte) {
		it := NewIter(data)
		for it.Next() {
			b := it.Batch()
			_ = b.Validate()
			ri, err := r.Records(b)
			if err != nil {
				continue
			}
			n := 0
			for ri.Next() {
				rec := ri.Record()
				hs := rec.Headers()
				for hs.Next() {
				}
				if b.IsControl() {
					ParseControl(rec)
				}
				n++
			}
			if ri.Err() == nil && n != int(max(b.NumRecords(), 0)) {
				t.Fatalf("read %d records without error, header says %d", n, b.NumRecords())
			}
		}
		if it.Err() != nil && it.Truncated() {
			t.Fatal("both an error and a truncated batch")
		}
		if it.Pos() > len(data) {
			t.Fatal("Pos past the end")
		}
	})
}

// FuzzLegacy: legacy iteration and conversion never panic, and what
// converts reads back as the same messages.
func FuzzLegacy(f *testing.F) {
	for _, magic := range []int8{0, 1} {
		var set []byte
		for _, r := range legacyRecs {
			set = appendLegacy(set, r.offset, magic, 0, r.ts, r.key, r.value)
		}
		f.Add(set)
	}
	d := &Decompressor{Max: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		it := NewLegacyIter(data, d)
		n := 0
		for it.Next() {
			n++
		}
		v2, count, err := ConvertLegacy(nil, data, d, nil, 0)
		if err != nil {
			return
		}
		if it.Err() == nil && count != n {
			t.Fatalf("iterated %d messages, converted %d", n, count)
		}
		bi := NewIter(v2)
		for bi.Next() {
			if err := bi.Batch().Validate(); err != nil {
				t.Fatalf("converted batch invalid: %v", err)
			}
		}
		li := NewLogIter(data)
		for li.Next() {
			if b := li.Batch(); b.Magic() < 2 {
				e, err := ParseLegacyEntry(b, d)
				if err == nil && (e.Messages == 0 || e.BaseOffset > e.LastOffset) {
					t.Fatalf("entry %+v accepted", e)
				}
			}
		}
	})
}

// FuzzDecompress: every codec's decompressor, on arbitrary input, returns
// an error or data within the limit; never a panic.
func FuzzDecompress(f *testing.F) {
	var z Compressor
	payload := bytes.Repeat([]byte("fuzz me "), 100)
	for _, c := range codecs[1:] {
		comp, _ := z.Compress(nil, c, payload)
		f.Add(uint8(c), comp)
	}
	const limit = 64 << 10
	d := Decompressor{Max: limit}
	f.Fuzz(func(t *testing.T, codec uint8, data []byte) {
		out, err := d.Decompress(nil, Codec(codec%5), data)
		if err == nil && len(out) > limit {
			t.Fatalf("%d bytes past the %d limit", len(out), limit)
		}
		if errors.Is(err, ErrTooLarge) && len(out) > 0 {
			t.Fatal("ErrTooLarge with data")
		}
	})
}
