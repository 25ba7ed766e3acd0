package backup

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// A segment buffer holds exactly what was written, in chunks that grow
// from 4 KiB to 1 MiB; released, its chunks serve the next buffer.
func TestSegBuf(t *testing.T) {
	pool := newChunkPool(64 << 20)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 3; round++ {
		b := &segBuf{pool: pool}
		var want bytes.Buffer
		for want.Len() < 5<<20+333 {
			p := make([]byte, rng.IntN(300<<10))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			if n, err := b.Write(p); n != len(p) || err != nil {
				t.Fatalf("Write: %d, %v", n, err)
			}
			want.Write(p)
		}
		if b.Len() != want.Len() || !bytes.Equal(bytes.Join(b.Parts(), nil), want.Bytes()) {
			t.Fatalf("round %d: %d bytes held, %d written; same bytes: %v", round, b.Len(), want.Len(), bytes.Equal(bytes.Join(b.Parts(), nil), want.Bytes()))
		}
		for i, c := range b.Parts() {
			if c := cap(c); c != 1<<min(minChunkShift+i, maxChunkShift) {
				t.Fatalf("chunk %d of %d bytes", i, c)
			}
		}
		if b.Cap() > b.Len()+1<<maxChunkShift {
			t.Fatalf("%d bytes held for %d", b.Cap(), b.Len())
		}
		held := b.Cap()
		b.release()
		if b.Len() != 0 || b.Cap() != 0 || pool.inUse != 0 || pool.kept != int64(held) {
			t.Fatalf("after release: len %d cap %d; pool in use %d, kept %d (want %d)", b.Len(), b.Cap(), pool.inUse, pool.kept, held)
		}
	}
}

// The pool keeps at most its bound once use falls back under it.
func TestChunkPoolBound(t *testing.T) {
	pool := newChunkPool(4 << 20)
	var bufs []*segBuf
	for i := 0; i < 8; i++ { // 8 MiB in use: over the bound
		b := &segBuf{pool: pool}
		b.Write(make([]byte, 1<<20))
		bufs = append(bufs, b)
	}
	for _, b := range bufs {
		b.release()
	}
	if pool.inUse != 0 || pool.kept > 4<<20 {
		t.Fatalf("in use %d, kept %d: want at most %d kept", pool.inUse, pool.kept, 4<<20)
	}
}

// chunkedCap, which the engine counts a sealed copy with before it
// exists, is the capacity a buffer really has once that much is written:
// at chunk boundaries and past the largest chunk size.
func TestChunkedCap(t *testing.T) {
	pool := newChunkPool(0)
	for _, n := range []int{0, 1, 4 << 10, 4<<10 + 1, 12 << 10, 1020 << 10, 1020<<10 + 1, 2044 << 10, 2044<<10 + 1, 5<<20 + 17} {
		b := &segBuf{pool: pool}
		b.Write(make([]byte, n))
		if got := chunkedCap(n); got != b.Cap() {
			t.Errorf("chunkedCap(%d) = %d, a buffer holding %d bytes has %d", n, got, n, b.Cap())
		}
		b.release()
	}
}
