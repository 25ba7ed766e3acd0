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

// partition restores one partition: every batch of its range but markers
// and aborted or undecided transactions, in order.
func (e *engine) partition(ctx context.Context, t *Target) error {
	p := t.Backup
	if len(p.Segments) == 0 || p.From >= p.To {
		return nil
	}
	txns, indexes, err := e.transactions(ctx, t)
	if err != nil {
		return err
	}
	d := &record.Decompressor{}
	var rn record.Renumberer
	undecided := 0
	for i, ref := range p.Segments {
		if ref.LastOffset < p.From || ref.BaseOffset >= p.To {
			continue
		}
		if err := e.segBudget.acquire(ctx, int64(ref.StoredBytes)); err != nil {
			return err
		}
		seg := indexes[i]
		stored, err := e.r.SegmentData(ctx, ref, seg)
		if err != nil {
			e.segBudget.release(int64(ref.StoredBytes))
			return fmt.Errorf("restore: %s: %w", t.Source, err)
		}
		err = seg.Batches(stored, d, func(_ repo.IndexEntry, b record.Batch) error {
			if b.LastOffset() < p.From || b.BaseOffset() >= p.To {
				return nil
			}
			if b.IsControl() {
				e.markers.Add(1)
				return nil
			}
			if b.IsTransactional() {
				ms := txns[b.ProducerID()]
				i := sort.Search(len(ms), func(i int) bool { return ms[i].offset > b.LastOffset() })
				switch {
				case i == len(ms):
					e.undecided.Add(1)
					undecided++
					return nil
				case ms[i].abort:
					e.aborted.Add(1)
					return nil
				}
			}
			return e.send(ctx, t, b, &rn)
		})
		e.segBudget.release(int64(ref.StoredBytes))
		if err != nil {
			return fmt.Errorf("restore: %s: %s: %w", t.Source, ref.Key, err)
		}
	}
	if undecided > 0 {
		e.log.Warn("restore: batches of transactions with no commit or abort marker in the backup were left out",
			"partition", t.Source.String(), "batches", undecided)
	}
	return nil
}

// send hands a copy of b (the segment's buffer is reused) to the
// producer, with contiguous offsets.
func (e *engine) send(ctx context.Context, t *Target, b record.Batch, rn *record.Renumberer) error {
	var own record.Batch
	if b.Contiguous() {
		own = record.Batch(append([]byte(nil), b...))
	} else {
		_, nb, err := rn.Renumber(nil, b)
		if err != nil {
			return fmt.Errorf("renumber the batch at offset %d: %w", b.BaseOffset(), err)
		}
		own = nb
		e.ren.Add(1)
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
