package backup

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ktape/ktape/repo"
)

// uploader stores sealed segments in the background, a bounded number at
// a time, so that fetching continues while earlier data is written. It
// counts the bytes it holds so the engine can keep within its budget.
type uploader struct {
	r     *repo.Repository
	obs   Observer
	slots chan struct{}
	free  chan *bytes.Buffer // up to two buffers of stored segments, for reuse: more would be memory outside the budget
	size  int                // capacity of a new buffer; 0: grown as needed

	mu       sync.Mutex
	cond     *sync.Cond
	inFlight int64 // bytes held by uploads not finished
	running  int
	err      error
}

func newUploader(r *repo.Repository, obs Observer, n, size int) *uploader {
	u := &uploader{r: r, obs: obs, slots: make(chan struct{}, n), free: make(chan *bytes.Buffer, 2), size: size}
	u.cond = sync.NewCond(&u.mu)
	return u
}

// buffer returns an empty buffer for a segment, with room for a whole
// one when the budget allows it for every partition: growing a buffer by
// doubling copies the segment again and touches fresh memory, which cost
// a quarter of a plain backup's CPU until the free buffers were warm.
func (u *uploader) buffer() *bytes.Buffer {
	select {
	case b := <-u.free:
		return b
	default:
		return bytes.NewBuffer(make([]byte, 0, u.size))
	}
}

// put stores the segment held in buf in the background, once one of the
// upload slots is free. It fails at once if an earlier upload failed.
func (u *uploader) put(ctx context.Context, p *partition, buf *bytes.Buffer, seg *repo.Segment) error {
	select {
	case u.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	u.mu.Lock()
	if u.err != nil {
		u.mu.Unlock()
		<-u.slots
		return u.err
	}
	held := int64(buf.Cap())
	u.inFlight += held
	u.running++
	u.mu.Unlock()
	go func() {
		start := time.Now()
		ref, err := u.r.PutSegment(ctx, p.topic.Name, p.topic.ID, p.tp.Partition, buf.Bytes(), seg)
		if err != nil {
			err = fmt.Errorf("backup: %s: store segment at offset %d: %w", p.tp, seg.Entries[0].BaseOffset, err)
		} else {
			u.obs.Stored(StoreEvent{TopicPartition: p.tp, Segment: ref, Took: time.Since(start)})
		}
		buf.Reset()
		select {
		case u.free <- buf:
		default:
		}
		u.mu.Lock()
		u.inFlight -= held
		u.running--
		if err != nil && u.err == nil {
			u.err = err
		}
		u.cond.Broadcast()
		u.mu.Unlock()
		<-u.slots
	}()
	return nil
}

// held is the bytes uploads hold now.
func (u *uploader) held() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.inFlight
}

// waitOne waits until an upload finishes (or none is running) and
// returns the first upload error.
func (u *uploader) waitOne() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if n := u.running; n > 0 && u.err == nil {
		for u.running >= n && u.err == nil {
			u.cond.Wait()
		}
	}
	return u.err
}

// wait waits for every upload and returns the first error.
func (u *uploader) wait() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	for u.running > 0 {
		u.cond.Wait()
	}
	return u.err
}
