package client

import (
	"math/bits"
	"sync"
)

// BufferPool hands out byte slices for response frames in power-of-two size
// classes, so a frame of any size reuses a buffer at most twice its size.
// It is safe for concurrent use. The zero value is ready.
type BufferPool struct {
	classes [40]sync.Pool
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
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<c)
}

// Put returns b to the pool. b must have come from Get.
func (p *BufferPool) Put(b []byte) {
	c := class(cap(b))
	if cap(b) != 1<<c {
		return // not one of ours
	}
	b = b[:0]
	p.classes[c].Put(&b)
}
