package repo

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/ktape/ktape/internal/testfixtures"
	"github.com/ktape/ktape/record"
)

// fixtureBatches returns every v2 batch of every captured fixture
// partition: data written by kgo, kcat, confluent-kafka and kafka-python,
// in every codec, with transactions and markers.
func fixtureBatches(t testing.TB) [][]record.Batch {
	t.Helper()
	names, err := testfixtures.Names()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]record.Batch
	for _, name := range names {
		fx, err := testfixtures.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if fx.Magic != 2 {
			continue
		}
		for _, p := range fx.Partitions {
			var bs []record.Batch
			it := record.NewIter(p.Raw)
			for it.Next() {
				bs = append(bs, it.Batch())
			}
			if it.Err() != nil {
				t.Fatalf("%s: %v", name, it.Err())
			}
			if len(bs) > 0 {
				out = append(out, bs)
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d fixture partitions", len(out))
	}
	return out
}

func writeSegment(t testing.TB, f Framing, chunk int, batches []record.Batch) ([]byte, *Segment) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewSegmentWriter(&buf, f, chunk)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	seg, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), seg
}

// Every fixture partition, in every framing and with frames of one batch,
// several or all: the index survives encoding, the stored bytes hash to
// the recorded SHA-256, and reading gives back every batch byte for byte.
// A plain segment is exactly the batches concatenated (a Kafka .log).
func TestSegmentRoundTrip(t *testing.T) {
	d := &record.Decompressor{}
	for pi, batches := range fixtureBatches(t) {
		var raw []byte
		for _, b := range batches {
			raw = append(raw, b...)
		}
		for _, f := range []Framing{FramingNone, FramingZstd, FramingLZ4} {
			for _, chunk := range []int{1, 4096, 0} {
				name := fmt.Sprintf("partition %d, %s, chunk %d", pi, f, chunk)
				stored, seg := writeSegment(t, f, chunk, batches)
				if f == FramingNone && !bytes.Equal(stored, raw) {
					t.Fatalf("%s: a plain segment is not the batches as they came", name)
				}
				idx := seg.AppendIndex(nil)
				if len(idx) != indexHeaderLen+len(batches)*indexEntryLen+indexTrailerLen {
					t.Fatalf("%s: index of %d bytes for %d batches", name, len(idx), len(batches))
				}
				got, err := ParseIndex(idx)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if fmt.Sprint(got.Entries) != fmt.Sprint(seg.Entries) || got.StoredLen != seg.StoredLen || got.DataLen != uint64(len(raw)) {
					t.Fatalf("%s: index changed in a round trip", name)
				}
				if err := got.CheckSum(stored, sha256.Sum256(stored)); err != nil || seg.SHA256 != sha256.Sum256(stored) {
					t.Fatalf("%s: SHA-256: %v", name, err)
				}
				var back []byte
				if err := got.Batches(stored, d, func(e IndexEntry, b record.Batch) error {
					back = append(back, b...)
					return nil
				}); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !bytes.Equal(back, raw) {
					t.Fatalf("%s: batches read back differ", name)
				}
				if !strings.HasPrefix(seg.Name(), fmt.Sprintf("%020d-", batches[0].BaseOffset())) || len(seg.Name()) != 37 {
					t.Fatalf("%s: name %q", name, seg.Name())
				}
			}
		}
	}
}

// Damage anywhere is found and located: a flipped byte in the stored
// segment fails its SHA-256, and reading names the batch (a batch CRC or
// a frame that no longer decompresses); a damaged index fails its CRC.
func TestSegmentDamageIsLocated(t *testing.T) {
	batches := fixtureBatches(t)[0]
	d := &record.Decompressor{}
	for _, f := range []Framing{FramingNone, FramingZstd} {
		stored, seg := writeSegment(t, f, 1, batches)
		for _, pos := range []int{0, len(stored) / 3, len(stored) - 1} {
			bad := bytes.Clone(stored)
			bad[pos] ^= 0x40
			if err := seg.CheckSum(bad, seg.SHA256); err == nil {
				t.Fatalf("%s: byte %d flipped, SHA-256 still matches", f, pos)
			}
			err := seg.Batches(bad, d, func(IndexEntry, record.Batch) error { return nil })
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("%s: byte %d flipped: %v, want a CorruptError", f, pos, err)
			}
			e := seg.Entries[ce.Batch]
			if uint64(pos) < e.FramePos || uint64(pos) >= e.FramePos+uint64(e.FrameLen) {
				t.Fatalf("%s: byte %d flipped, blamed on batch %d at %d+%d: %v", f, pos, ce.Batch, e.FramePos, e.FrameLen, err)
			}
		}
		if err := seg.CheckSum(stored[:len(stored)-1], seg.SHA256); err == nil {
			t.Fatalf("%s: truncated segment accepted", f)
		}
	}
	_, seg := writeSegment(t, FramingNone, 0, batches)
	idx := seg.AppendIndex(nil)
	for pos := range idx {
		bad := bytes.Clone(idx)
		bad[pos] ^= 1
		if _, err := ParseIndex(bad); err == nil {
			t.Fatalf("index byte %d flipped: accepted", pos)
		}
	}
	for n := range idx {
		if _, err := ParseIndex(idx[:n]); err == nil {
			t.Fatalf("index truncated to %d bytes: accepted", n)
		}
	}
}

// A writer told to DeferHash, and given entries to reuse, writes the same
// bytes and index, without the SHA-256; Hash over the stored bytes, in any
// pieces, gives the one the writer would have computed.
func TestSegmentDeferHash(t *testing.T) {
	for _, f := range []Framing{FramingNone, FramingZstd} {
		batches := fixtureBatches(t)[0]
		stored, want := writeSegment(t, f, 4096, batches)
		var buf bytes.Buffer
		w, _ := NewSegmentWriter(&buf, f, 4096)
		w.DeferHash()
		w.ReuseEntries(make([]IndexEntry, 3, 5)) // old entries: ignored
		for _, b := range batches {
			if err := w.AppendChecked(b); err != nil {
				t.Fatal(err)
			}
		}
		seg, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), stored) || !bytes.Equal(seg.AppendIndex(nil), want.AppendIndex(nil)) {
			t.Fatalf("%s: DeferHash changed the stored bytes or the index", f)
		}
		if seg.SHA256 != ([32]byte{}) {
			t.Fatalf("%s: SHA-256 set before Hash", f)
		}
		third := len(stored) / 3
		seg.Hash([][]byte{stored[:third], nil, stored[third : 2*third], stored[2*third:]})
		if seg.SHA256 != want.SHA256 || seg.Name() != want.Name() {
			t.Fatalf("%s: Hash gave %x, the writer %x", f, seg.SHA256[:8], want.SHA256[:8])
		}
	}
}

// The writer refuses what a segment must not hold: corrupt batches and
// offsets going backwards.
func TestSegmentWriterRefuses(t *testing.T) {
	batches := fixtureBatches(t)[0]
	w, _ := NewSegmentWriter(&bytes.Buffer{}, FramingNone, 0)
	bad := record.Batch(bytes.Clone(batches[0]))
	bad[len(bad)-1] ^= 1
	if err := w.Append(bad); err == nil || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("corrupt batch: %v", err)
	}
	// AppendChecked leaves the CRC to the caller, and checks the rest.
	w, _ = NewSegmentWriter(&bytes.Buffer{}, FramingNone, 0)
	if err := w.AppendChecked(bad); err != nil {
		t.Fatalf("AppendChecked of a batch with a wrong CRC: %v (its CRC is the caller's to check)", err)
	}
	magic := record.Batch(bytes.Clone(batches[0]))
	magic[16] = 1
	for name, b := range map[string]record.Batch{"short": batches[0][:40], "cut": batches[0][:len(batches[0])-1], "magic 1": magic} {
		for _, checked := range []bool{false, true} {
			w, _ = NewSegmentWriter(&bytes.Buffer{}, FramingNone, 0)
			append := w.Append
			if checked {
				append = w.AppendChecked
			}
			if err := append(b); err == nil {
				t.Fatalf("%s batch (checked %v): accepted", name, checked)
			}
		}
	}
	if len(batches) > 1 {
		w, _ = NewSegmentWriter(&bytes.Buffer{}, FramingNone, 0)
		if err := w.Append(batches[1]); err != nil {
			t.Fatal(err)
		}
		if err := w.Append(batches[0]); err == nil || !strings.Contains(err.Error(), "must increase") {
			t.Fatalf("offsets backwards: %v", err)
		}
	}
	if _, err := NewSegmentWriter(&bytes.Buffer{}, Framing(9), 0); err == nil {
		t.Fatal("framing 9 accepted")
	}
}

func FuzzParseIndex(f *testing.F) {
	for _, batches := range fixtureBatches(f)[:3] {
		for _, fr := range []Framing{FramingNone, FramingZstd} {
			_, seg := writeSegment(f, fr, 4096, batches)
			f.Add(seg.AppendIndex(nil))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		seg, err := ParseIndex(b)
		if err != nil {
			return
		}
		if again := seg.AppendIndex(nil); !bytes.Equal(again, b) {
			t.Fatalf("an accepted index does not re-encode to itself")
		}
		// Reading a segment of zeros against any accepted index fails
		// cleanly or succeeds, never panics.
		_ = seg.Batches(make([]byte, min(seg.StoredLen, 1<<16)), &record.Decompressor{Max: 1 << 20}, func(IndexEntry, record.Batch) error { return nil })
	})
}

// A range of a segment, widened to whole frames and read alone, gives the
// same batches as reading the whole segment.
func TestBatchRange(t *testing.T) {
	var batches []record.Batch
	for _, p := range fixtureBatches(t) {
		if len(p) > len(batches) {
			batches = p
		}
	}
	for _, f := range []Framing{FramingNone, FramingZstd, FramingLZ4} {
		stored, seg := writeSegment(t, f, 3000, batches) // small frames: several batches each
		var all []record.Batch
		seg.Batches(stored, &record.Decompressor{}, func(_ IndexEntry, b record.Batch) error {
			all = append(all, append(record.Batch(nil), b...))
			return nil
		})
		n := len(seg.Entries)
		for _, r := range [][2]int{{0, n}, {1, 2}, {n / 2, n}, {n - 1, n}} {
			lo, hi, pos, length := seg.FrameRange(r[0], r[1])
			if lo > r[0] || hi < r[1] {
				t.Fatalf("%v: FrameRange(%v) = %d..%d", f, r, lo, hi)
			}
			i := lo
			err := seg.BatchRange(stored[pos:pos+length], lo, hi, &record.Decompressor{}, func(_ IndexEntry, b record.Batch) error {
				if !bytes.Equal(b, all[i]) {
					t.Fatalf("%v: range %v: batch %d differs", f, r, i)
				}
				i++
				return nil
			})
			if err != nil || i != hi {
				t.Fatalf("%v: range %v: %d batches, %v", f, r, i-lo, err)
			}
		}
	}
}

// BatchRangeInto decompresses the frames of a range one after another
// into the space given, sized by RawLen, so that every batch it passed on
// is still intact after the walk: none shares memory with another, and
// nothing was allocated for them.
func TestBatchRangeInto(t *testing.T) {
	var batches []record.Batch
	for _, p := range fixtureBatches(t) {
		if len(p) > len(batches) {
			batches = p
		}
	}
	for _, f := range []Framing{FramingNone, FramingZstd, FramingLZ4} {
		stored, seg := writeSegment(t, f, 3000, batches)
		n := len(seg.Entries)
		for _, r := range [][2]int{{0, n}, {1, 2}, {n / 2, n}} {
			lo, hi, pos, length := seg.FrameRange(r[0], r[1])
			raw := seg.RawLen(lo, hi)
			if f == FramingNone && raw != 0 || f != FramingNone && raw < int(seg.Entries[hi-1].Length) {
				t.Fatalf("%v: RawLen(%d, %d) = %d", f, lo, hi, raw)
			}
			space := make([]byte, 0, raw+1)
			var got []record.Batch
			err := seg.BatchRangeInto(stored[pos:pos+length], space, lo, hi, &record.Decompressor{}, func(_ IndexEntry, b record.Batch) error {
				if f != FramingNone && !within(b, space[:cap(space)]) {
					t.Fatalf("%v: batch %d is outside the space given", f, lo+len(got))
				}
				got = append(got, b)
				return nil
			})
			if err != nil || len(got) != hi-lo {
				t.Fatalf("%v: range %v: %d batches, %v", f, r, len(got), err)
			}
			for i, b := range got {
				if !bytes.Equal(b, batches[lo+i]) {
					t.Fatalf("%v: range %v: batch %d changed after the walk", f, r, lo+i)
				}
			}
		}
	}
}

// within reports whether b lies inside mem.
func within(b, mem []byte) bool {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return len(mem) > 0 && p >= start && p+uintptr(len(b)) <= start+uintptr(len(mem))
}

// Legacy message sets (every fixture: magic 0 and 1, every codec), then a
// v2 batch, in every framing: stored byte for byte, indexed by their
// messages' offsets and times, read back checked, and a damaged one found.
func TestSegmentLegacy(t *testing.T) {
	names, err := testfixtures.Names()
	if err != nil {
		t.Fatal(err)
	}
	v2 := fixtureBatches(t)[0][0]
	n := 0
	for _, name := range names {
		fx, err := testfixtures.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if fx.Magic == 2 {
			continue
		}
		p := fx.Partitions[0]
		n++
		for _, f := range []Framing{FramingNone, FramingZstd, FramingLZ4} {
			var buf bytes.Buffer
			w, err := NewSegmentWriter(&buf, f, 300)
			if err != nil {
				t.Fatal(err)
			}
			var raw []byte
			it := record.NewLogIter(p.Raw)
			for it.Next() {
				if _, err := w.AppendLegacy(it.Batch(), nil); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				raw = append(raw, it.Batch()...)
			}
			// A v2 batch after them, renumbered to follow (its CRC
			// does not cover the base offset).
			b := append(record.Batch(nil), v2...)
			b.SetBaseOffset(p.HighWatermark)
			if err := w.Append(b); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			raw = append(raw, b...)
			seg, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseIndex(seg.AppendIndex(nil))
			if err != nil {
				t.Fatalf("%s/%s: %v", name, f, err)
			}
			for i, fb := range p.Batches {
				e := back.Entries[i]
				if e.Magic != fx.Magic || e.BaseOffset != fb.Records[0].Offset || e.LastOffset != fb.LastOffset ||
					e.FirstTime != fb.Records[0].Timestamp || e.ProducerID != -1 || e.Length != uint32(fb.Size) {
					t.Errorf("%s/%s: entry %d: %+v, fixture %+v", name, f, i, e, fb)
				}
			}
			var got []byte
			if err := back.Batches(buf.Bytes(), &record.Decompressor{}, func(_ IndexEntry, b record.Batch) error {
				got = append(got, b...)
				return nil
			}); err != nil {
				t.Fatalf("%s/%s: %v", name, f, err)
			}
			if !bytes.Equal(got, raw) {
				t.Errorf("%s/%s: read back differs", name, f)
			}
			if f != FramingNone {
				continue
			}
			// A flipped byte in the last legacy message's value.
			bad := bytes.Clone(buf.Bytes())
			last := back.Entries[len(p.Batches)-1]
			bad[last.FramePos+uint64(last.Length)-2] ^= 0x40
			var ce *CorruptError
			if err := back.Batches(bad, &record.Decompressor{}, func(IndexEntry, record.Batch) error { return nil }); !errors.As(err, &ce) || ce.Batch != len(p.Batches)-1 {
				t.Errorf("%s: damage in entry %d: %v", name, len(p.Batches)-1, err)
			}
		}
	}
	if n < 7 {
		t.Fatalf("%d legacy fixtures", n)
	}
}
