package record

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand"
	"testing"

	"github.com/ktape/ktape/protocol"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var codecs = []Codec{None, Gzip, Snappy, LZ4, Zstd}

type testRecord struct {
	ts         int64
	key, value []byte
	headers    []Header
}

// testRecords makes n records with nulls, empties, headers (one with a
// null value) and out-of-order timestamps.
func testRecords(rng *rand.Rand, n int) []testRecord {
	recs := make([]testRecord, n)
	for i := range recs {
		r := &recs[i]
		r.ts = 1_700_000_000_000 + int64(rng.Intn(5000)) - 2500
		switch i % 4 {
		case 0:
			r.key, r.value = nil, []byte(fmt.Sprintf("value-%d", i))
		case 1:
			r.key, r.value = []byte(fmt.Sprintf("key-%d", i)), nil
		case 2:
			r.key, r.value = []byte{}, []byte{}
		default:
			r.key = []byte(fmt.Sprintf("k%d", i))
			r.value = bytes.Repeat([]byte{byte(i)}, rng.Intn(300))
			r.headers = []Header{{Key: []byte("h1"), Value: []byte("v1")}, {Key: []byte("null"), Value: nil}, {Key: []byte{}, Value: []byte{}}}
		}
	}
	return recs
}

func buildBatch(t testing.TB, h BatchHeader, recs []testRecord) Batch {
	t.Helper()
	var b Builder
	b.Reset(nil, h, nil)
	for _, r := range recs {
		b.Append(r.ts, r.key, r.value, r.headers)
	}
	_, batch, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return batch
}

func sameBytes(a, b []byte) bool { return bytes.Equal(a, b) && (a == nil) == (b == nil) }

func checkRecords(t *testing.T, batch Batch, base int64, want []testRecord) {
	t.Helper()
	var r Reader
	it, err := r.Records(batch)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for it.Next() {
		got, w := it.Record(), want[i]
		if got.Offset != base+int64(i) || got.Timestamp != w.ts || !sameBytes(got.Key, w.key) || !sameBytes(got.Value, w.value) || got.NumHeaders != len(w.headers) {
			t.Fatalf("record %d: got %+v, want %+v", i, got, w)
		}
		hs := got.Headers()
		for j := 0; hs.Next(); j++ {
			if !bytes.Equal(hs.Key(), w.headers[j].Key) || !sameBytes(hs.Value(), w.headers[j].Value) {
				t.Fatalf("record %d header %d: got %q=%q", i, j, hs.Key(), hs.Value())
			}
		}
		i++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(want) {
		t.Fatalf("read %d records, want %d", i, len(want))
	}
}

func TestBuildAndReadEveryCodec(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, c := range codecs {
		for _, n := range []int{1, 7, 500} {
			recs := testRecords(rng, n)
			h := NoProducer
			h.BaseOffset, h.Codec = 1000, c
			batch := buildBatch(t, h, recs)
			if _, err := Parse(batch); err != nil {
				t.Fatalf("%s/%d: %v", c, n, err)
			}
			if batch.Codec() != c || batch.NumRecords() != int32(n) || batch.LastOffset() != 1000+int64(n)-1 {
				t.Fatalf("%s/%d: header %v %d %d", c, n, batch.Codec(), batch.NumRecords(), batch.LastOffset())
			}
			checkRecords(t, batch, 1000, recs)
		}
	}
}

// kmsg (franz-go) reads ktape's batches: header fields, CRC and, for
// uncompressed batches, every record.
func TestBatchesReadByKmsg(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, c := range codecs {
		recs := testRecords(rng, 40)
		h := BatchHeader{BaseOffset: 77, PartitionLeaderEpoch: 5, Codec: c, ProducerID: 12345, ProducerEpoch: 3, BaseSequence: 99, Transactional: true}
		batch := buildBatch(t, h, recs)
		var kb kmsg.RecordBatch
		if err := kb.ReadFrom(batch); err != nil {
			t.Fatal(err)
		}
		if kb.FirstOffset != 77 || kb.PartitionLeaderEpoch != 5 || kb.ProducerID != 12345 || kb.ProducerEpoch != 3 || kb.FirstSequence != 99 || kb.NumRecords != 40 || kb.Attributes&0x10 == 0 {
			t.Fatalf("%s: kmsg header %+v", c, kb)
		}
		if uint32(kb.CRC) != crc32.Checksum(batch[21:], crc32.MakeTable(crc32.Castagnoli)) {
			t.Fatalf("%s: CRC mismatch", c)
		}
		if c != None {
			continue // kmsg does not decompress; end-to-end checks go through kgo
		}
		data := kb.Records
		for i := 0; i < 40; i++ {
			var kr kmsg.Record
			if err := kr.ReadFrom(data); err != nil {
				t.Fatal(err)
			}
			w := recs[i]
			if int(kr.OffsetDelta) != i || kb.FirstTimestamp+kr.TimestampDelta64 != w.ts || !sameBytes(kr.Key, w.key) || !sameBytes(kr.Value, w.value) || len(kr.Headers) != len(w.headers) {
				t.Fatalf("record %d: kmsg %+v, want %+v", i, kr, w)
			}
			data = data[kr.Length+int32(protocol.VarintLen(int64(kr.Length))):]
		}
	}
}

func TestIterStopsAtTruncatedBatch(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	var set []byte
	for i := 0; i < 3; i++ {
		set = append(set, buildBatch(t, NoProducer, testRecords(rng, 5))...)
	}
	whole := len(set)
	for cut := 1; cut < 80; cut++ {
		it := NewIter(set[:whole-cut])
		n := 0
		for it.Next() {
			if err := it.Batch().Validate(); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if it.Err() != nil || !it.Truncated() || n != 2 {
			t.Fatalf("cut %d: n=%d err=%v truncated=%v", cut, n, it.Err(), it.Truncated())
		}
	}
	it := NewIter(set)
	for it.Next() {
	}
	if it.Truncated() || it.Err() != nil || it.Pos() != whole {
		t.Fatalf("whole set: truncated=%v err=%v pos=%d", it.Truncated(), it.Err(), it.Pos())
	}
	bad := append([]byte{}, set...)
	bad[16] = 7 // magic of the first batch
	it = NewIter(bad)
	var ce *CorruptError
	if it.Next() || !errors.As(it.Err(), &ce) || ce.Offset != 16 {
		t.Fatalf("bad magic: %v", it.Err())
	}
}

// Every in-place rewrite leaves a CRC equal to a full recomputation, for
// batch sizes on both sides of the patch threshold.
func TestRewritePatchesCRC(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for _, n := range []int{1, 3, 20, 300, 3000} {
		batch := buildBatch(t, NoProducer, testRecords(rng, n))
		for i := 0; i < 50; i++ {
			switch i % 6 {
			case 0:
				batch.SetProducer(ProducerState{ProducerID: rng.Int63(), ProducerEpoch: int16(rng.Intn(1000)), BaseSequence: rng.Int31(), Transactional: rng.Intn(2) == 0})
			case 1:
				batch.SetMaxTimestamp(rng.Int63())
			case 2:
				batch.SetLastOffsetDelta(rng.Int31())
			case 3:
				batch.SetAttributes(int16(rng.Intn(0x80)))
			case 4:
				batch.SetBaseTimestamp(rng.Int63())
			case 5:
				batch.SetBaseOffset(rng.Int63())
				batch.SetPartitionLeaderEpoch(rng.Int31())
			}
			if got, want := batch.CRC(), batch.ComputeCRC(); got != want {
				t.Fatalf("n=%d step %d: patched CRC %08x, recomputed %08x", n, i, got, want)
			}
		}
	}
}

func TestControlBatch(t *testing.T) {
	for _, commit := range []bool{true, false} {
		b := Batch(AppendControl(nil, 42, 7, 2, commit, 9, 1_700_000_000_000))
		if err := b.Validate(); err != nil {
			t.Fatal(err)
		}
		if !b.IsControl() || !b.IsTransactional() || b.ProducerID() != 7 || b.ProducerEpoch() != 2 {
			t.Fatalf("header: control=%v txn=%v", b.IsControl(), b.IsTransactional())
		}
		var r Reader
		it, err := r.Records(b)
		if err != nil || !it.Next() {
			t.Fatal(err, it.Err())
		}
		c, err := ParseControl(it.Record())
		if err != nil || c.IsCommit() != commit || c.IsAbort() == commit || c.CoordinatorEpoch != 9 {
			t.Fatalf("%+v %v", c, err)
		}
		var kb kmsg.RecordBatch
		if err := kb.ReadFrom(b); err != nil || kb.Attributes&0x20 == 0 {
			t.Fatalf("kmsg: %v", err)
		}
	}
}

// A batch that decompresses past the limit is refused without allocating
// the decompressed size.
func TestDecompressionBomb(t *testing.T) {
	big := make([]byte, 8<<20) // zeros: compresses to almost nothing
	var z Compressor
	for _, c := range codecs[1:] {
		comp, err := z.Compress(nil, c, big)
		if err != nil {
			t.Fatal(err)
		}
		d := Decompressor{Max: 1 << 20}
		if _, err := d.Decompress(nil, c, comp); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: %d compressed bytes: got %v, want ErrTooLarge", c, len(comp), err)
		}
		d.Max = 16 << 20
		out, err := d.Decompress(nil, c, comp)
		if err != nil || !bytes.Equal(out, big) {
			t.Fatalf("%s under the limit: %v", c, err)
		}
	}
}

func TestXerialSnappy(t *testing.T) {
	payload := bytes.Repeat([]byte("kafka xerial snappy "), 5000)
	var z Compressor
	// Build xerial framing by hand from two raw blocks.
	b1, _ := z.Compress(nil, Snappy, payload[:40000])
	b2, _ := z.Compress(nil, Snappy, payload[40000:])
	x := append([]byte{}, xerialMagic...)
	x = append(x, 0, 0, 0, 1, 0, 0, 0, 1)
	for _, b := range [][]byte{b1, b2} {
		x = append(x, byte(len(b)>>24), byte(len(b)>>16), byte(len(b)>>8), byte(len(b)))
		x = append(x, b...)
	}
	var d Decompressor
	out, err := d.Decompress(nil, Snappy, x)
	if err != nil || !bytes.Equal(out, payload) {
		t.Fatalf("xerial: %v (%d bytes)", err, len(out))
	}
	if _, err := d.Decompress(nil, Snappy, x[:len(x)-3]); err == nil {
		t.Fatal("truncated xerial accepted")
	}
}

// Steady-state iteration allocates nothing, compressed or not.
func TestIterationAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	rng := rand.New(rand.NewSource(5))
	for _, c := range codecs {
		h := NoProducer
		h.Codec = c
		batch := buildBatch(t, h, testRecords(rng, 100))
		var r Reader
		read := func() {
			it, err := r.Records(batch)
			if err != nil {
				t.Fatal(err)
			}
			for it.Next() {
				hs := it.Record().Headers()
				for hs.Next() {
				}
			}
		}
		read() // warm the buffer and decoders
		if n := testing.AllocsPerRun(20, read); n != 0 {
			t.Errorf("%s: %.1f allocs per batch", c, n)
		}
	}
}

func TestBuilderAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	var b Builder
	buf := make([]byte, 0, 1<<20)
	key, value := []byte("key"), make([]byte, 100)
	hdrs := []Header{{Key: []byte("h"), Value: []byte("v")}}
	n := testing.AllocsPerRun(20, func() {
		b.Reset(buf[:0], NoProducer, nil)
		for i := 0; i < 1000; i++ {
			b.Append(int64(i), key, value, hdrs)
		}
		b.Finish()
	})
	if n != 0 {
		t.Fatalf("%.1f allocs per 1000-record batch", n)
	}
}

func TestRenumber(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	for _, c := range codecs {
		recs := testRecords(rng, 30)
		h := NoProducer
		h.BaseOffset, h.Codec = 500, c
		var b Builder
		b.Reset(nil, h, nil)
		for i, r := range recs {
			b.AppendAt(int32(i*3), r.ts, r.key, r.value, r.headers) // gaps, as compaction leaves
		}
		_, gappy, err := b.Finish()
		if err != nil {
			t.Fatal(err)
		}
		if gappy.Contiguous() {
			t.Fatal("gappy batch claims contiguous offsets")
		}
		var rn Renumberer
		_, out, err := rn.Renumber(nil, gappy)
		if err != nil {
			t.Fatal(err)
		}
		if err := out.Validate(); err != nil || !out.Contiguous() || out.Codec() != c {
			t.Fatalf("%s: %v contiguous=%v", c, err, out.Contiguous())
		}
		checkRecords(t, out, 500, recs)
		// An already contiguous batch comes back byte for byte.
		_, again, err := rn.Renumber(nil, out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("%s: renumbering a contiguous batch changed it: %v", c, err)
		}
	}
}

func TestFilter(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for _, c := range codecs {
		recs := testRecords(rng, 40)
		h := NoProducer
		h.BaseOffset, h.Codec = 1000, c
		var b Builder
		b.Reset(nil, h, nil)
		for i, r := range recs {
			b.AppendAt(int32(i*2), r.ts, r.key, r.value, r.headers)
		}
		_, src, err := b.Finish()
		if err != nil {
			t.Fatal(err)
		}
		var rn Renumberer
		// Keep offsets 1010..1049 of a batch holding even offsets 1000..1078.
		keep := func(off, _ int64) bool { return off >= 1010 && off < 1050 }
		_, out, n, err := rn.Filter(nil, src, keep)
		if err != nil {
			t.Fatal(err)
		}
		if n != 20 || out.Validate() != nil || !out.Contiguous() || out.Codec() != c || out.BaseOffset() != 1000 {
			t.Fatalf("%s: kept %d, valid %v, contiguous %v, codec %s", c, n, out.Validate(), out.Contiguous(), out.Codec())
		}
		compareKgo(t, kgoRecords(t, out, 1100), 1000, recs[5:25])
		// Nothing kept: no batch, dst untouched.
		dst := []byte("x")
		dst, none, n, err := rn.Filter(dst, src, func(int64, int64) bool { return false })
		if err != nil || none != nil || n != 0 || string(dst) != "x" {
			t.Fatalf("%s: keeping nothing gave %d records, batch %v, dst %q, err %v", c, n, none != nil, dst, err)
		}
	}
}
