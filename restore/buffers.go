package restore

import (
	"context"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Read buffers. A restore reads the repository through a pool of buffers
// and hands the batches in them to the producer as they are: a buffer
// goes back to the pool when the last of its batches is acknowledged. In
// its steady state a restore allocates no memory for data, and the memory
// it holds is the pool's bound, whatever the size of the backup.

// bufAlign is the alignment of a buffer's memory, which direct I/O needs.
const bufAlign = 4096

// sizeStep rounds buffer sizes, so that buffers of units of about the same
// size are reused for each other.
const sizeStep = 1 << 20

// buffer is pooled memory holding batches that may be in flight. It is
// held by the reader filling it, the worker walking it, and every batch of
// it not yet acknowledged; release drops one hold.
type buffer struct {
	mem  []byte
	refs atomic.Int32
	pool *bufPool
}

func (b *buffer) retain() { b.refs.Add(1) }

func (b *buffer) release() {
	switch n := b.refs.Add(-1); {
	case n == 0:
		b.pool.put(b)
	case n < 0:
		panic("restore: read buffer released more often than held")
	}
}

// poisonFreed makes tests overwrite every buffer that comes back to the
// pool, so that a batch still using it cannot go unnoticed.
var poisonFreed bool

// bufPool hands out buffers within max bytes, counting those in use and
// those kept free for reuse alike. A request waits for buffers to come
// back; one larger than the whole pool is served once nothing else is in
// use, so that a batch larger than the memory budget is restored too,
// alone. A caller never waits while holding a buffer, which keeps the
// pool from deadlocking: every buffer in use is on its way back.
type bufPool struct {
	mu    sync.Mutex
	cond  *sync.Cond
	max   int64
	held  int64 // in use and free
	inUse int64
	free  map[int][]*buffer // by size
}

func newBufPool(max int64) *bufPool {
	p := &bufPool{max: max, free: map[int][]*buffer{}}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// get returns a buffer of at least n bytes, held once, waiting until the
// pool has room or ctx ends.
func (p *bufPool) get(ctx context.Context, n int) (*buffer, error) {
	size := (n + sizeStep - 1) / sizeStep * sizeStep
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	for {
		if l := p.free[size]; len(l) > 0 {
			b := l[len(l)-1]
			l[len(l)-1] = nil
			p.free[size] = l[:len(l)-1]
			p.inUse += int64(size)
			p.mu.Unlock()
			b.refs.Store(1)
			return b, nil
		}
		if p.held+int64(size) <= p.max || p.inUse == 0 {
			for p.held+int64(size) > p.max && p.dropFree() {
			}
			p.held += int64(size)
			p.inUse += int64(size)
			p.mu.Unlock()
			b := &buffer{mem: alignedBytes(size), pool: p}
			b.refs.Store(1)
			return b, nil
		}
		if p.dropFree() { // free buffers of other sizes make room
			continue
		}
		if err := ctx.Err(); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		p.cond.Wait()
	}
}

// put takes a buffer back: kept for reuse, or dropped while the pool
// holds more than its bound (after a request larger than it).
func (p *bufPool) put(b *buffer) {
	if poisonFreed {
		for i := range b.mem {
			b.mem[i] = 0xA5
		}
	}
	size := len(b.mem)
	p.mu.Lock()
	p.inUse -= int64(size)
	if p.held > p.max {
		p.held -= int64(size)
	} else {
		p.free[size] = append(p.free[size], b)
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// dropFree lets one free buffer go; it reports whether there was one.
// Caller holds p.mu.
func (p *bufPool) dropFree() bool {
	for size, l := range p.free {
		if len(l) > 0 {
			l[len(l)-1] = nil
			p.free[size] = l[:len(l)-1]
			p.held -= int64(size)
			return true
		}
	}
	return false
}

// alignedBytes allocates n bytes starting at a bufAlign boundary.
func alignedBytes(n int) []byte {
	b := make([]byte, n+bufAlign)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (bufAlign - 1))
	return b[off : off+n : off+n]
}
