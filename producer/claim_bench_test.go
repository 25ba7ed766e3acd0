package producer

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ktape/ktape/protocol"
)

// The measurement issue 5 asks for before choosing the claim algorithm:
// the wait-free variant (one atomic add of (1 record, size) on a packed
// word, with the offset- and timestamp-delta varints written at a fixed
// two-byte width because their values are unknown until the add returns)
// against the lock-free variant (load the packed word, size the record
// with minimal varints for the index it would get, compare-and-swap).
// Both copy a 100-byte value into a 1 MiB slot and commit with a second
// atomic add; the goroutine that overflows a slot waits for the
// commits, then reopens it. BENCHMARKS.md has the figures.

const benchSlotSize = 1 << 20

type benchSlot struct {
	tail      atomic.Uint64
	_         [56]byte
	committed atomic.Int64
	_         [56]byte
	gen       atomic.Uint64
	buf       []byte
}

func (s *benchSlot) reopen(end uint64) {
	for s.committed.Load() != int64(end-batchHeaderLen) {
		runtime.Gosched()
	}
	s.committed.Store(0)
	s.gen.Add(1)
	s.tail.Store(batchHeaderLen)
}

// claimAdd is the wait-free claim: size does not depend on the index.
func claimAdd(s *benchSlot, value []byte) {
	body := 1 + 2 + 2 + 1 + protocol.VarintLen(int64(len(value))) + len(value) + 1
	size := uint64(protocol.VarintLen(int64(body)) + body)
	for {
		g := s.gen.Load()
		old := s.tail.Add(1<<countShift|size) - (1<<countShift | size)
		idx, off := old>>countShift, old&offsetMask
		if off+size <= benchSlotSize && idx < maxBatchRecords {
			writeBenchRecord(s.buf[off:off+size], body, 0, int(idx), value, true)
			s.committed.Add(int64(size))
			return
		}
		if off <= benchSlotSize && idx <= maxBatchRecords {
			s.reopen(off) // the first claim past the end seals and reopens
			continue
		}
		for s.gen.Load() == g {
			runtime.Gosched()
		}
	}
}

// claimCAS is the lock-free claim: minimal varints, sized per attempt.
func claimCAS(s *benchSlot, value []byte) {
	for {
		g := s.gen.Load()
		old := s.tail.Load()
		idx, off := old>>countShift, old&offsetMask
		body := 1 + 1 + protocol.VarintLen(int64(idx)) + 1 + protocol.VarintLen(int64(len(value))) + len(value) + 1
		size := uint64(protocol.VarintLen(int64(body)) + body)
		if off+size <= benchSlotSize && idx < maxBatchRecords {
			if !s.tail.CompareAndSwap(old, old+(1<<countShift|size)) {
				continue
			}
			writeBenchRecord(s.buf[off:off+size], body, 0, int(idx), value, false)
			s.committed.Add(int64(size))
			return
		}
		if off <= benchSlotSize && s.tail.CompareAndSwap(old, old|offsetMask) {
			s.reopen(off)
			continue
		}
		for s.gen.Load() == g {
			runtime.Gosched()
		}
	}
}

func writeBenchRecord(b []byte, body int, tsDelta int64, idx int, value []byte, fixed bool) {
	n := len(protocol.AppendVarint(b[:0], int64(body)))
	b[n] = 0
	n++
	if fixed {
		putFixedVarint(b[n:], tsDelta)
		putFixedVarint(b[n+2:], int64(idx))
		n += 4
	} else {
		n += len(protocol.AppendVarint(b[n:n], tsDelta))
		n += len(protocol.AppendVarint(b[n:n], int64(idx)))
	}
	b[n] = 1 // null key
	n++
	n += len(protocol.AppendVarint(b[n:n], int64(len(value))))
	n += copy(b[n:], value)
	b[n] = 0 // no headers
}

func benchClaim(b *testing.B, claim func(*benchSlot, []byte), goroutines int) {
	s := &benchSlot{buf: make([]byte, benchSlotSize)}
	s.tail.Store(batchHeaderLen)
	value := make([]byte, 100)
	b.SetBytes(100)
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N / goroutines
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				claim(s, value)
			}
		}()
	}
	wg.Wait()
}

func BenchmarkClaim(b *testing.B) {
	for _, g := range []int{1, 2, 4} {
		b.Run("variant=waitfree-add/goroutines="+itoa(g), func(b *testing.B) { benchClaim(b, claimAdd, g) })
		b.Run("variant=lockfree-cas/goroutines="+itoa(g), func(b *testing.B) { benchClaim(b, claimCAS, g) })
	}
}

func itoa(i int) string { return string(rune('0' + i)) }
