package backup

import (
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
	pool  *chunkPool // the chunks of segments' buffers, reused
	// entries are index entries of stored segments, for the next ones.
	entries chan []repo.IndexEntry

	mu       sync.Mutex
	cond     *sync.Cond
	inFlight int64 // bytes held by uploads not finished
	running  int
	err      error
}

// newUploader stores up to n segments at a time, and keeps up to keep
// bytes of segment buffers for reuse.
func newUploader(r *repo.Repository, obs Observer, n int, keep int64) *uploader {
	u := &uploader{r: r, obs: obs, slots: make(chan struct{}, n), pool: newChunkPool(keep), entries: make(chan []repo.IndexEntry, 2*n)}
	u.cond = sync.NewCond(&u.mu)
	if r.Encrypted() {
		// Sealed segments go into buffers from the same pool.
		r.SealBuffer = func() (repo.PartsWriter, func()) {
			b := &segBuf{pool: u.pool}
			return b, b.release
		}
	}
	return u
}

// buffer returns an empty buffer for a segment. It grows in chunks from
// the uploader's pool, without copying: a bytes.Buffer grown by doubling
// copied each segment again, touched fresh memory, and left the garbage
// collector its old arrays (with eight partitions, a seventh of a
// backup's CPU, and a peak RSS well over the budget).
//
// In an encrypted repository the buffer's cost counts the one it will be
// sealed into, so that the engine sets that memory aside while the
// segment is built: sealing it, to free memory, then adds nothing.
func (u *uploader) buffer() *segBuf {
	b := &segBuf{pool: u.pool}
	if u.r.Encrypted() {
		b.sealedBound = u.r.SealedBound
	}
	return b
}

// reuseEntries gives w the index entries of a stored segment to build its
// own in, if there are any: so that indexes leave no garbage either.
func (u *uploader) reuseEntries(w *repo.SegmentWriter) {
	select {
	case e := <-u.entries:
		w.ReuseEntries(e)
	default:
	}
}

// A stored segment: its partition, and the manifest's reference to it
// once its upload has finished (read it after wait).
type stored struct {
	p   *partition
	ref repo.SegmentRef
}

// put hashes and stores the segment held in buf in the background, once
// one of the upload slots is free, and returns where its reference will
// be. It fails at once if an earlier upload failed. SHA-256 is the
// costliest step of a backup after the kernel's copies (0.76 CPU-s/GiB
// here); done here, it runs beside the engine, which goes on fetching
// and building the next segments.
func (u *uploader) put(ctx context.Context, p *partition, buf *segBuf, seg *repo.Segment) (*stored, error) {
	select {
	case u.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	u.mu.Lock()
	if u.err != nil {
		u.mu.Unlock()
		<-u.slots
		return nil, u.err
	}
	held := int64(buf.Cost(0)) // with the buffer it is sealed into
	u.inFlight += held
	u.running++
	u.mu.Unlock()
	s := &stored{p: p}
	tp, topic, topicID := p.tp, p.topic.Name, p.topic.ID
	go func() {
		start := time.Now()
		if !u.r.Encrypted() {
			seg.Hash(buf.Parts()) // an encrypted repository hashes the sealed object
		}
		ref, err := u.r.PutSegmentParts(ctx, topic, topicID, tp.Partition, buf.Parts(), seg)
		if err != nil {
			err = fmt.Errorf("backup: %s: store segment at offset %d: %w", tp, seg.Entries[0].BaseOffset, err)
		} else {
			s.ref = ref
			u.obs.Stored(StoreEvent{TopicPartition: tp, Segment: ref, Took: time.Since(start)})
		}
		buf.release()
		select {
		case u.entries <- seg.Entries[:0]: // the segment is stored: done with
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
	return s, nil
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
