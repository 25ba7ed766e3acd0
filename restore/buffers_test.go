package restore

import (
	"context"
	"testing"
	"time"
	"unsafe"
)

// The pool reuses what comes back, never holds more than its bound but
// for one request larger than all of it (served alone), lets free buffers
// of another size go to make room, and gives up a wait when its context
// ends.
func TestBufPool(t *testing.T) {
	ctx := context.Background()
	p := newBufPool(3 * sizeStep)
	get := func(n int) *buffer {
		t.Helper()
		b, err := p.get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if uintptr(unsafe.Pointer(unsafe.SliceData(b.mem)))%bufAlign != 0 || len(b.mem) < n {
			t.Fatalf("buffer of %d bytes for %d, aligned %v", len(b.mem), n, uintptr(unsafe.Pointer(unsafe.SliceData(b.mem)))%bufAlign == 0)
		}
		return b
	}
	a := get(100)
	first := &a.mem[0]
	a.release()
	if b := get(sizeStep); &b.mem[0] != first {
		t.Fatal("a buffer of the same size was not reused")
	} else {
		b.release()
	}

	// Three fill the pool; a fourth waits for one to come back, through
	// every hold (a batch in flight holds its buffer too).
	bs := []*buffer{get(1), get(1), get(1)}
	bs[0].retain()
	got := make(chan *buffer)
	go func() { b, _ := p.get(ctx, 1); got <- b }()
	bs[0].release()
	select {
	case <-got:
		t.Fatal("a fourth buffer over the bound")
	case <-time.After(50 * time.Millisecond):
	}
	bs[0].release()
	d := <-got
	if p.held > p.max {
		t.Fatalf("holds %d bytes, bound %d", p.held, p.max)
	}

	// One larger than the pool waits until nothing else is in use, then
	// is served; the pool lets it go when it comes back.
	go func() { b, _ := p.get(ctx, 5*sizeStep); got <- b }()
	for _, b := range []*buffer{bs[1], bs[2], d} {
		select {
		case <-got:
			t.Fatal("a buffer larger than the pool served while others were in use")
		case <-time.After(20 * time.Millisecond):
		}
		b.release()
	}
	big := <-got
	if len(big.mem) != 5*sizeStep {
		t.Fatalf("%d bytes", len(big.mem))
	}
	big.release()
	if p.held > p.max || p.inUse != 0 {
		t.Fatalf("after the large buffer: holds %d (bound %d), %d in use", p.held, p.max, p.inUse)
	}

	// Free buffers of 1 MiB make room for one of 2 MiB.
	for _, b := range []*buffer{get(1), get(1), get(1)} {
		b.release()
	}
	two := get(2 * sizeStep)
	if p.held > p.max {
		t.Fatalf("holds %d, bound %d", p.held, p.max)
	}
	two.release()

	// A wait ends with its context.
	hold := get(3 * sizeStep)
	cctx, cancel := context.WithCancel(ctx)
	go func() { _, err := p.get(cctx, 1); got <- &buffer{mem: []byte(err.Error())} }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case b := <-got:
		if string(b.mem) != context.Canceled.Error() {
			t.Fatalf("cancelled wait: %s", b.mem)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled wait did not end")
	}
	hold.release()
}
