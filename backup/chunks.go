package backup

import "sync"

// Chunk sizes of a segment buffer: its first chunk is minChunk bytes and
// each next one twice the one before, up to maxChunk. A partition that
// receives little holds little; one that fills a segment holds it in
// maxChunk pieces. Nothing is ever copied to grow.
const (
	minChunkShift = 12 // 4 KiB
	maxChunkShift = 20 // 1 MiB
)

// chunkPool keeps the chunks of stored segments for the segments built
// next, so that a backup in its steady state allocates no segment memory
// and leaves the garbage collector nothing large to find. What it keeps,
// chunks in use and free together, stays within keep bytes once use falls
// back under it. It is safe for concurrent use.
type chunkPool struct {
	mu    sync.Mutex
	keep  int64 // most bytes kept, in use and free
	kept  int64 // bytes allocated and not dropped: in use + free
	inUse int64
	peak  int64 // the most in use at once
	free  [maxChunkShift + 1][][]byte
}

// peakInUse is the most bytes in use at once: what segments being built,
// sealed and stored really held.
func (p *chunkPool) peakInUse() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

func newChunkPool(keep int64) *chunkPool { return &chunkPool{keep: keep} }

// get returns an empty chunk of capacity 1<<shift.
func (p *chunkPool) get(shift int) []byte {
	size := int64(1) << shift
	p.mu.Lock()
	p.inUse += size
	p.peak = max(p.peak, p.inUse)
	if fl := p.free[shift]; len(fl) > 0 {
		c := fl[len(fl)-1]
		fl[len(fl)-1] = nil
		p.free[shift] = fl[:len(fl)-1]
		p.mu.Unlock()
		return c
	}
	p.kept += size
	p.mu.Unlock()
	return make([]byte, 0, size)
}

// put takes a chunk back: kept for reuse, or dropped when the pool keeps
// more than its bound (use peaked above it).
func (p *chunkPool) put(c []byte) {
	size := int64(cap(c))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inUse -= size
	if p.kept > p.keep {
		p.kept -= size
		return
	}
	shift := 0
	for int64(1)<<shift < size {
		shift++
	}
	p.free[shift] = append(p.free[shift], c[:0])
}

// chunkedCap is the capacity a segBuf holds once n bytes are written.
func chunkedCap(n int) int {
	c := 0
	for k := 0; c < n; k++ {
		if shift := minChunkShift + k; shift < maxChunkShift {
			c += 1 << shift
			continue
		}
		// From here every chunk is 1<<maxChunkShift.
		return c + (n-c+1<<maxChunkShift-1)>>maxChunkShift<<maxChunkShift
	}
	return c
}

// segBuf is the stored bytes of one segment being built, in chunks from
// a pool. It is an io.Writer for repo.SegmentWriter.
type segBuf struct {
	pool   *chunkPool
	chunks [][]byte // full, but for the last
	n      int
	held   int // capacity of the chunks
	// sealedBound, in an encrypted repository, bounds the length of the
	// age file n bytes are sealed into (repo.SealedBound), in a second
	// buffer from the pool.
	sealedBound func(n int) int
}

// Cost is the memory the buffer holds, with pending more bytes to come,
// and, in an encrypted repository, the buffer it will be sealed into:
// what storing it will take at most.
func (b *segBuf) Cost(pending int) int {
	c := b.held + pending
	if b.sealedBound != nil {
		c += chunkedCap(b.sealedBound(b.n + pending))
	}
	return c
}

func (b *segBuf) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := len(b.chunks)
		if k == 0 || len(b.chunks[k-1]) == cap(b.chunks[k-1]) {
			c := b.pool.get(min(minChunkShift+k, maxChunkShift))
			b.chunks = append(b.chunks, c)
			b.held += cap(c)
			k++
		}
		last := b.chunks[k-1]
		m := min(len(p), cap(last)-len(last))
		b.chunks[k-1] = append(last, p[:m]...)
		p = p[m:]
	}
	b.n += n
	return n, nil
}

// Len is the bytes written.
func (b *segBuf) Len() int { return b.n }

// Cap is the memory the buffer holds.
func (b *segBuf) Cap() int { return b.held }

// Parts returns the bytes written, in order: views of the chunks, valid
// until release.
func (b *segBuf) Parts() [][]byte { return b.chunks }

// release returns the chunks to the pool; the buffer is empty after.
func (b *segBuf) release() {
	for i, c := range b.chunks {
		b.pool.put(c)
		b.chunks[i] = nil
	}
	b.chunks, b.n, b.held = b.chunks[:0], 0, 0
}
