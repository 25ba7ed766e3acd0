package protocol

// The varint primitives against encoding/binary, the reference
// implementation: unit tests under testing/quick (STYLE.md 2.2) and fuzz
// targets over arbitrary bytes and values.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"testing/quick"
)

var quickConfig = &quick.Config{MaxCount: 20000}

// Values at every width boundary of the encodings, which random values
// rarely hit.
var varintEdges = func() []uint64 {
	out := []uint64{0, 1, math.MaxUint64, math.MaxInt64, 1 << 63}
	for s := 7; s < 64; s += 7 {
		out = append(out, 1<<s-1, 1<<s, 1<<s+1)
	}
	for s := 8; s < 64; s += 8 {
		out = append(out, 1<<s-1, 1<<s)
	}
	return out
}()

func TestAppendUvarintMatchesBinary(t *testing.T) {
	ours := func(x uint64) []byte { return AppendUvarint([]byte{0xaa}, x) }
	ref := func(x uint64) []byte { return binary.AppendUvarint([]byte{0xaa}, x) }
	if err := quick.CheckEqual(ours, ref, quickConfig); err != nil {
		t.Fatal(err)
	}
	for _, x := range varintEdges {
		if got, want := ours(x), ref(x); !bytes.Equal(got, want) {
			t.Errorf("AppendUvarint(%#x) = %x, want %x", x, got, want)
		}
	}
}

func TestUvarintLenMatchesBinary(t *testing.T) {
	f := func(x uint64) bool { return UvarintLen(x) == len(binary.AppendUvarint(nil, x)) }
	if err := quick.Check(f, quickConfig); err != nil {
		t.Fatal(err)
	}
	for _, x := range varintEdges {
		if !f(x) {
			t.Errorf("UvarintLen(%#x) = %d, want %d", x, UvarintLen(x), len(binary.AppendUvarint(nil, x)))
		}
	}
}

func TestParseUvarintMatchesBinary(t *testing.T) {
	type result struct {
		V uint64
		N int
	}
	ours := func(b []byte) result { v, n := ParseUvarint(b); return result{v, n} }
	ref := func(b []byte) result { v, n := binary.Uvarint(b); return result{v, n} }
	if err := quick.CheckEqual(ours, ref, quickConfig); err != nil {
		t.Fatal(err)
	}
	// Encoded values, with and without trailing bytes, and every truncation.
	f := func(x uint64, tail []byte) bool {
		enc := binary.AppendUvarint(nil, x)
		for i := 0; i <= len(enc); i++ {
			if ours(enc[:i]) != ref(enc[:i]) {
				return false
			}
		}
		b := append(enc, tail...)
		return ours(b) == ref(b) && ours(b) == result{x, len(enc)}
	}
	if err := quick.Check(f, quickConfig); err != nil {
		t.Fatal(err)
	}
	// Overlong and overflowing encodings.
	for _, b := range [][]byte{
		{0x80, 0x00},
		bytes.Repeat([]byte{0x80}, 9),
		append(bytes.Repeat([]byte{0xff}, 9), 0x01),
		append(bytes.Repeat([]byte{0xff}, 9), 0x02),
		append(bytes.Repeat([]byte{0x80}, 10), 0x00),
		bytes.Repeat([]byte{0x80}, 20),
	} {
		if got, want := ours(b), ref(b); got != want {
			t.Errorf("ParseUvarint(%x) = %+v, want %+v", b, got, want)
		}
	}
}

func TestAppendVarintMatchesBinary(t *testing.T) {
	ours := func(x int64) []byte { return AppendVarint([]byte{0x55}, x) }
	ref := func(x int64) []byte { return binary.AppendVarint([]byte{0x55}, x) }
	if err := quick.CheckEqual(ours, ref, quickConfig); err != nil {
		t.Fatal(err)
	}
	for _, u := range varintEdges {
		for _, x := range []int64{int64(u), -int64(u), math.MinInt64, math.MinInt32, math.MaxInt32} {
			if got, want := ours(x), ref(x); !bytes.Equal(got, want) {
				t.Errorf("AppendVarint(%d) = %x, want %x", x, got, want)
			}
		}
	}
}

func TestVarintLenMatchesBinary(t *testing.T) {
	f := func(x int64) bool { return VarintLen(x) == len(binary.AppendVarint(nil, x)) }
	if err := quick.Check(f, quickConfig); err != nil {
		t.Fatal(err)
	}
	for _, u := range varintEdges {
		for _, x := range []int64{int64(u), -int64(u)} {
			if !f(x) {
				t.Errorf("VarintLen(%d) = %d, want %d", x, VarintLen(x), len(binary.AppendVarint(nil, x)))
			}
		}
	}
}

func TestParseVarintMatchesBinary(t *testing.T) {
	type result struct {
		V int64
		N int
	}
	ours := func(b []byte) result { v, n := ParseVarint(b); return result{v, n} }
	ref := func(b []byte) result { v, n := binary.Varint(b); return result{v, n} }
	if err := quick.CheckEqual(ours, ref, quickConfig); err != nil {
		t.Fatal(err)
	}
	f := func(x int64, tail []byte) bool {
		enc := binary.AppendVarint(nil, x)
		for i := 0; i <= len(enc); i++ {
			if ours(enc[:i]) != ref(enc[:i]) {
				return false
			}
		}
		b := append(enc, tail...)
		return ours(b) == ref(b) && ours(b) == result{x, len(enc)}
	}
	if err := quick.Check(f, quickConfig); err != nil {
		t.Fatal(err)
	}
}

// uvarint32 reads compact lengths, counts and tags: it must agree with
// binary.Uvarint wherever the value fits 32 bits in at most 5 bytes, and
// refuse everything else.
func TestUvarint32MatchesBinary(t *testing.T) {
	f := func(b []byte) bool { return uvarint32Agrees(b) == "" }
	if err := quick.Check(f, quickConfig); err != nil {
		t.Fatal(err)
	}
	g := func(x uint32, tail []byte) bool {
		b := append(binary.AppendUvarint(nil, uint64(x)), tail...)
		v, n := uvarint32(b)
		return v == x && n == UvarintLen(uint64(x)) && uvarint32Agrees(b) == ""
	}
	if err := quick.Check(g, quickConfig); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0x0f},       // MaxUint32
		{0xff, 0xff, 0xff, 0xff, 0x10},       // 2^32: overflow
		{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, // 0 in 6 bytes: too long
		{0x80, 0x80, 0x80, 0x80},             // short
		{0x80, 0x00},                         // 0 in 2 bytes: accepted
	} {
		if msg := uvarint32Agrees(b); msg != "" {
			t.Error(msg)
		}
	}
}

// uvarint32Agrees returns "" if uvarint32(b) is what binary.Uvarint implies.
func uvarint32Agrees(b []byte) string {
	v, n := uvarint32(b)
	rv, rn := binary.Uvarint(b)
	switch {
	case rn > 0 && rn <= 5 && rv <= math.MaxUint32:
		if v != uint32(rv) || n != rn {
			return fmt.Sprintf("uvarint32(%x) = %d, %d; binary.Uvarint %d, %d", b, v, n, rv, rn)
		}
	case rn == 0 && len(b) < 5:
		if n != 0 {
			return fmt.Sprintf("uvarint32(%x) = %d, %d; want short (n = 0)", b, v, n)
		}
	default: // too long, too large, or overflowing 64 bits
		if n != -1 {
			return fmt.Sprintf("uvarint32(%x) = %d, %d; binary.Uvarint %d, %d; want n = -1", b, v, n, rv, rn)
		}
	}
	return ""
}

func FuzzUvarint(f *testing.F) {
	f.Add([]byte{}, uint64(0))
	f.Add([]byte{0x7f}, uint64(127))
	f.Add([]byte{0x80, 0x01}, uint64(128))
	f.Add(append(bytes.Repeat([]byte{0xff}, 9), 0x01), uint64(math.MaxUint64))
	f.Add(append(bytes.Repeat([]byte{0xff}, 9), 0x02), uint64(1)<<63)
	f.Add(bytes.Repeat([]byte{0x80}, 11), uint64(1)<<35)
	f.Fuzz(func(t *testing.T, b []byte, x uint64) {
		v, n := ParseUvarint(b)
		rv, rn := binary.Uvarint(b)
		if v != rv || n != rn {
			t.Fatalf("ParseUvarint(%x) = %d, %d; binary.Uvarint %d, %d", b, v, n, rv, rn)
		}
		if msg := uvarint32Agrees(b); msg != "" {
			t.Fatal(msg)
		}
		enc := AppendUvarint(nil, x)
		if ref := binary.AppendUvarint(nil, x); !bytes.Equal(enc, ref) {
			t.Fatalf("AppendUvarint(%d) = %x, binary %x", x, enc, ref)
		}
		if UvarintLen(x) != len(enc) {
			t.Fatalf("UvarintLen(%d) = %d, encoded %d bytes", x, UvarintLen(x), len(enc))
		}
		if got, n := ParseUvarint(append(enc, b...)); got != x || n != len(enc) {
			t.Fatalf("ParseUvarint(AppendUvarint(%d)) = %d, %d", x, got, n)
		}
	})
}

func FuzzVarint(f *testing.F) {
	f.Add([]byte{}, int64(0))
	f.Add([]byte{0x01}, int64(-1))
	f.Add([]byte{0x02}, int64(1))
	f.Add(append(bytes.Repeat([]byte{0xff}, 9), 0x01), int64(math.MinInt64))
	f.Add(append(bytes.Repeat([]byte{0xfe}, 9), 0x01), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, b []byte, x int64) {
		v, n := ParseVarint(b)
		rv, rn := binary.Varint(b)
		if v != rv || n != rn {
			t.Fatalf("ParseVarint(%x) = %d, %d; binary.Varint %d, %d", b, v, n, rv, rn)
		}
		enc := AppendVarint(nil, x)
		if ref := binary.AppendVarint(nil, x); !bytes.Equal(enc, ref) {
			t.Fatalf("AppendVarint(%d) = %x, binary %x", x, enc, ref)
		}
		if VarintLen(x) != len(enc) {
			t.Fatalf("VarintLen(%d) = %d, encoded %d bytes", x, VarintLen(x), len(enc))
		}
		if got, n := ParseVarint(append(enc, b...)); got != x || n != len(enc) {
			t.Fatalf("ParseVarint(AppendVarint(%d)) = %d, %d", x, got, n)
		}
	})
}
