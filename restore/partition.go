package restore

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/repo"
)

// marker is a transaction marker: where a producer's transaction ended,
// and how.
type marker struct {
	offset int64
	abort  bool
}

// transactions reads the partition's segment indexes (returned, in
// order, for the restore to use) and its transaction markers, by producer
// id, in offset order. Only the batches the index flags as control batches
// are read (range reads of their frames).
func (e *engine) transactions(ctx context.Context, t *Target) (map[int64][]marker, []*repo.Segment, error) {
	out := map[int64][]marker{}
	var indexes []*repo.Segment
	d := &record.Decompressor{}
	var frame []byte
	for _, ref := range t.Backup.Segments {
		seg, err := e.r.Index(ctx, ref)
		if err != nil {
			return nil, nil, fmt.Errorf("restore: %s: %w", t.Source, err)
		}
		indexes = append(indexes, seg)
		for i, ent := range seg.Entries {
			if ent.Attributes&attrControl == 0 || ent.Magic != 2 {
				continue
			}
			stored, err := e.r.Frame(ctx, ref, seg, i)
			if err != nil {
				return nil, nil, fmt.Errorf("restore: %s: %s: %w", t.Source, ref.Key, err)
			}
			b, err := seg.Batch(frame, stored, i, d)
			if err != nil {
				return nil, nil, fmt.Errorf("restore: %s: %s: %w", t.Source, ref.Key, err)
			}
			it := record.NewRecordIter(b, b.RecordsData())
			for it.Next() {
				cr, err := record.ParseControl(it.Record())
				if err != nil {
					return nil, nil, fmt.Errorf("restore: %s: %s: control batch at offset %d: %w", t.Source, ref.Key, b.BaseOffset(), err)
				}
				if cr.IsAbort() || cr.IsCommit() {
					out[b.ProducerID()] = append(out[b.ProducerID()], marker{offset: b.BaseOffset(), abort: cr.IsAbort()})
				}
			}
			if err := it.Err(); err != nil {
				return nil, nil, fmt.Errorf("restore: %s: %s: control batch at offset %d: %w", t.Source, ref.Key, b.BaseOffset(), err)
			}
		}
	}
	return out, indexes, nil
}

const (
	attrTransactional = 0x10
	attrControl       = 0x20
)

// searchMarker finds the first marker after offset.
func searchMarker(ms []marker, offset int64) int {
	return sort.Search(len(ms), func(i int) bool { return ms[i].offset > offset })
}

// piece is one batch the restore writes: what is sent, and what of the
// source it covers.
type piece struct {
	batch record.Batch
	// first and last are the source offsets covered; records the count.
	first, last, records int64
	// src is the source batch, and keep the window's test when only some
	// of its records are in batch (nil: all of them, at offsets
	// first+0, first+1, ...).
	src  record.Batch
	keep func(offset, ts int64) bool
	// borrowed: batch lives in a buffer reused for the next frame
	borrowed bool
}

// partition restores one target partition: it walks every batch of the
// source's range in order, deciding each from the index, reading only the
// batches restored, and passing the restore's batches to emit. The walk is
// the same on every run, which is what makes resuming exact.
func (e *engine) partition(ctx context.Context, ps *partState) error {
	t := ps.t
	ps.pending = e.groups[t.Source]
	ps.translated = map[int64]int64{}
	if err := e.walk(ctx, t, func(pc *piece) error { return e.emit(ctx, ps, pc) }); err != nil {
		return err
	}
	if ps.walked < ps.done {
		return fmt.Errorf("restore: %s holds %d records more than this restore writes into it: something else wrote there; restore elsewhere",
			t.Dest, ps.done-ps.walked)
	}
	for _, c := range ps.pending {
		ps.translated[c] = ps.start + ps.walked
	}
	ps.pending = nil
	return nil
}

// emit records pc in the offset map, translates the committed offsets it
// covers, and sends it unless the target already holds it.
func (e *engine) emit(ctx context.Context, ps *partState, pc *piece) error {
	base := ps.start + ps.walked
	if err := ps.m.Add(repo.OffsetMapEntry{SourceFirst: pc.first, SourceLast: pc.last, TargetBase: base, Records: pc.records}); err != nil {
		return fmt.Errorf("restore: %s: %w", ps.t.Source, err)
	}
	for len(ps.pending) > 0 && ps.pending[0] <= pc.last {
		c := ps.pending[0]
		ps.translated[c] = base + pc.before(c)
		ps.pending = ps.pending[1:]
	}
	ps.batches++
	ps.walked += pc.records
	switch {
	case ps.walked <= ps.done:
		e.already.Add(1)
		return nil
	case ps.walked-pc.records < ps.done:
		return fmt.Errorf("restore: %s holds %d records of this restore, which ends inside the batch of source offsets %d-%d: something else wrote there; restore elsewhere",
			ps.t.Dest, ps.done, pc.first, pc.last)
	}
	return e.send(ctx, ps.t, pc)
}

// before counts the records of pc whose source offset is below c.
func (pc *piece) before(c int64) int64 {
	switch {
	case c <= pc.first:
		return 0
	case c > pc.last:
		return pc.records
	case pc.keep == nil && pc.src.Contiguous() && pc.last-pc.first+1 == pc.records:
		return c - pc.first
	}
	var r record.Reader
	it, err := r.Records(pc.src)
	if err != nil {
		return 0 // read once already, when the piece was made
	}
	n := int64(0)
	for it.Next() {
		rec := it.Record()
		if rec.Offset < c && (pc.keep == nil || pc.keep(rec.Offset, rec.Timestamp)) {
			n++
		}
	}
	return n
}

// walk passes the restore's batches of t, in order, to emit.
func (e *engine) walk(ctx context.Context, t *Target, emit func(*piece) error) error {
	p := t.Backup
	if len(p.Segments) == 0 || p.From >= p.To {
		return nil
	}
	txns, indexes, err := e.transactions(ctx, t)
	if err != nil {
		return err
	}
	w := t.window
	d := &record.Decompressor{}
	var rn record.Renumberer
	var r record.Reader
	undecided := 0
	stopped := false
	for i, ref := range p.Segments {
		seg := indexes[i]
		// Which entries are restored: the rest are counted, not read.
		lo, hi := -1, -1
		for j := range seg.Entries {
			v := judge(w, txns, &seg.Entries[j])
			if v == stop {
				stopped = true
				break
			}
			switch v {
			case sendWhole, inspect:
				if lo < 0 {
					lo = j
				}
				hi = j + 1
			case skipMarker:
				e.markers.Add(1)
			case skipAborted:
				e.aborted.Add(1)
			case skipUndecided:
				e.undecided.Add(1)
				undecided++
			case skipOutside:
				e.outside.Add(1)
			}
		}
		if lo >= 0 {
			if err := e.segment(ctx, t, ref, seg, lo, hi, txns, d, &rn, &r, emit); err != nil {
				return fmt.Errorf("restore: %s: %s: %w", t.Source, ref.Key, err)
			}
		}
		if stopped {
			break
		}
	}
	if undecided > 0 {
		e.log.Warn("restore: batches of transactions with no commit or abort marker in the backup were left out",
			"partition", t.Source.String(), "batches", undecided)
	}
	return nil
}

// segment reads entries lo..hi-1 of a segment (all of it, checked
// against its SHA-256, or a range read) and emits those restored.
func (e *engine) segment(ctx context.Context, t *Target, ref repo.SegmentRef, seg *repo.Segment, lo, hi int,
	txns map[int64][]marker, d *record.Decompressor, rn *record.Renumberer, r *record.Reader, emit func(*piece) error) error {
	var data []byte
	var err error
	n := int64(ref.StoredBytes)
	if lo > 0 || hi < len(seg.Entries) {
		_, _, _, length := seg.FrameRange(lo, hi)
		n = int64(length)
	}
	if err := e.segBudget.acquire(ctx, n); err != nil {
		return err
	}
	defer e.segBudget.release(n)
	if lo == 0 && hi == len(seg.Entries) {
		data, err = e.r.SegmentData(ctx, ref, seg)
	} else {
		data, lo, hi, err = e.r.SegmentRange(ctx, ref, seg, lo, hi)
	}
	if err != nil {
		return err
	}
	borrowed := seg.Framing != repo.FramingNone
	w := t.window
	return seg.BatchRange(data, lo, hi, d, func(ie repo.IndexEntry, b record.Batch) error {
		switch judge(w, txns, &ie) {
		case sendWhole:
			pc := piece{batch: b, first: b.BaseOffset(), last: b.LastOffset(), records: int64(b.NumRecords()), src: b, borrowed: borrowed}
			if !b.Contiguous() {
				_, nb, err := rn.Renumber(nil, b)
				if err != nil {
					return fmt.Errorf("renumber the batch at offset %d: %w", b.BaseOffset(), err)
				}
				pc.batch, pc.borrowed = nb, false
				e.ren.Add(1)
			}
			return emit(&pc)
		case inspect:
			return e.inspect(b, w, r, rn, borrowed, emit)
		}
		return nil // counted when the entries were judged
	})
}

// inspect restores the records of b inside the window w: b itself when
// all are, a re-encoded batch when some are, nothing when none is.
func (e *engine) inspect(b record.Batch, w window, r *record.Reader, rn *record.Renumberer, borrowed bool, emit func(*piece) error) error {
	it, err := r.Records(b)
	if err != nil {
		return fmt.Errorf("batch at offset %d: %w", b.BaseOffset(), err)
	}
	var kept, total int64
	first, last := int64(-1), int64(-1)
	for it.Next() {
		rec := it.Record()
		total++
		if w.keep(rec.Offset, rec.Timestamp) {
			if kept == 0 {
				first = rec.Offset
			}
			kept++
			last = rec.Offset
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("batch at offset %d: %w", b.BaseOffset(), err)
	}
	switch {
	case kept == 0:
		e.outside.Add(1)
		return nil
	case kept == total && b.Contiguous():
		return emit(&piece{batch: b, first: b.BaseOffset(), last: b.LastOffset(), records: total, src: b, borrowed: borrowed})
	}
	_, nb, n, err := rn.Filter(nil, b, w.keep)
	if err != nil {
		return fmt.Errorf("re-encode the batch at offset %d: %w", b.BaseOffset(), err)
	}
	if int64(n) != kept {
		return fmt.Errorf("re-encode the batch at offset %d: %d records kept, %d counted", b.BaseOffset(), n, kept)
	}
	if kept == total {
		e.ren.Add(1)
	} else {
		e.filtered.Add(1)
	}
	return emit(&piece{batch: nb, first: first, last: last, records: kept, src: b, keep: w.keep})
}

// send hands pc's batch to the producer, copied first when it is
// borrowed from a reused buffer.
func (e *engine) send(ctx context.Context, t *Target, pc *piece) error {
	own := pc.batch
	if pc.borrowed {
		own = append(record.Batch(nil), own...)
	}
	if err := e.limit.wait(ctx, len(own)); err != nil {
		return err
	}
	records, size := int64(own.NumRecords()), int64(len(own))
	return e.p.SendBatch(ctx, t.Dest, own, func(_ int64, err error) {
		if err != nil {
			e.fail(fmt.Errorf("restore: %s (from %s): %w", t.Dest, t.Source, err))
			return
		}
		e.batches.Add(1)
		e.records.Add(records)
		e.bytes.Add(size)
	})
}

// budget bounds bytes held at once, waiting for releases.
type budget struct {
	mu   sync.Mutex
	cond *sync.Cond
	max  int64
	used int64
}

func newBudget(n int64) *budget {
	b := &budget{max: n}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire takes n bytes, waiting until they are free; a request larger
// than the whole budget waits until nothing else is held.
func (b *budget) acquire(ctx context.Context, n int64) error {
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	defer stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.used > 0 && b.used+n > b.max {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.cond.Wait()
	}
	b.used += n
	return nil
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.cond.Broadcast()
	b.mu.Unlock()
}
