package client

import (
	"math/bits"
	"sync"
)

// BufferPool hands out byte slices for response frames in power-of-two size
// classes, so a frame of any size reuses a buffer at most twice its size.
// Unlike a sync.Pool it is not emptied by every garbage collection, and
// what it retains is bounded: per class, at most MaxFree buffers and
// MaxFreeBytes bytes (at least one buffer). It is safe for concurrent use.
// The zero value is ready.
type BufferPool struct {
	MaxFree      int   // 0 means 8
	MaxFreeBytes int64 // 0 means 32 MiB
	classes      [40]freeList
}

type freeList struct {
	mu   sync.Mutex
	free [][]byte
}

const minClass = 12 // 4 KiB: smaller frames share one class

func class(n int) int {
	if n <= 1<<minClass {
		return minClass
	}
	return bits.Len(uint(n - 1))
}

// Get returns a slice of length n.
func (p *BufferPool) Get(n int) []byte {
	c := class(n)
	fl := &p.classes[c]
	fl.mu.Lock()
	if k := len(fl.free); k > 0 {
		b := fl.free[k-1]
		fl.free[k-1] = nil
		fl.free = fl.free[:k-1]
		fl.mu.Unlock()
		return b[:n]
	}
	fl.mu.Unlock()
	return make([]byte, n, 1<<c)
}

// Put returns b to the pool. b must have come from Get; if its class is
// full, b is left to the garbage collector.
func (p *BufferPool) Put(b []byte) {
	c := class(cap(b))
	if cap(b) != 1<<c {
		return // not one of ours
	}
	max := p.MaxFree
	if max <= 0 {
		max = 8
	}
	maxBytes := p.MaxFreeBytes
	if maxBytes <= 0 {
		maxBytes = 32 << 20
	}
	max = min(max, int(maxBytes>>c))
	if max < 1 {
		max = 1
	}
	fl := &p.classes[c]
	fl.mu.Lock()
	if len(fl.free) < max {
		if fl.free == nil {
			fl.free = make([][]byte, 0, max)
		}
		fl.free = append(fl.free, b[:0])
	}
	fl.mu.Unlock()
}
