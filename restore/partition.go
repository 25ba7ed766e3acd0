package restore

import (
	"context"
	"fmt"
	"sort"

	"github.com/ktape/ktape/client"
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
	// buf holds batch, when it is a stored batch sent as it is: the
	// producer holds buf until the batch is acknowledged
	buf *buffer
	// from is the index of the source in the target partition's sources
	from int
}

// job restores the target partitions of j: it walks the batches of each
// of its sources in order, deciding each from the index, reading only the
// batches restored, and passing the restore's batches to emit (or, for a
// topic spread by key, their records to spread). The walk is the same on
// every run, which is what makes resuming exact.
func (e *engine) job(ctx context.Context, j *job) error {
	if j.hash > 0 {
		if err := e.spreadJob(ctx, j); err != nil {
			return err
		}
	} else {
		ps := j.parts[0]
		if len(ps.sources) == 1 { // offsets translate exactly
			ps.pending = e.groups[ps.sources[0].Source]
			ps.translated = map[int64]int64{}
		}
		for i, t := range j.targets {
			if err := e.walk(ctx, t, false, func(pc *piece) error { pc.from = i; return e.emit(ctx, ps, pc) }); err != nil {
				return err
			}
		}
	}
	for _, ps := range j.parts {
		if !ps.active {
			continue
		}
		if ps.walked < ps.done {
			return fmt.Errorf("restore: %s holds %d records more than this restore writes into it: something else wrote there; restore elsewhere",
				ps.dest, ps.done-ps.walked)
		}
		for _, c := range ps.pending {
			ps.translated[c] = ps.start + ps.walked
		}
		ps.pending = nil
	}
	for _, t := range j.targets {
		e.obs.Restored(Event{Source: t.Source, Dest: t.Dest, Next: t.Backup.To})
	}
	return nil
}

// emit records pc in the offset map, translates the committed offsets it
// covers, and sends it unless the target already holds it.
func (e *engine) emit(ctx context.Context, ps *partState, pc *piece) error {
	if !ps.active {
		return nil // another run's partition, or one complete
	}
	base := ps.start + ps.walked
	if err := ps.m.Add(repo.OffsetMapEntry{Source: pc.from, SourceFirst: pc.first, SourceLast: pc.last, TargetBase: base, Records: pc.records}); err != nil {
		return fmt.Errorf("restore: %s (from %s): %w", ps.dest, ps.sources[pc.from].Source, err)
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
		e.obs.Restored(Event{Source: ps.sources[pc.from].Source, Dest: ps.dest, Next: pc.last + 1})
		return nil
	case ps.walked-pc.records < ps.done:
		return fmt.Errorf("restore: %s holds %d records of this restore, which ends inside the batch of source offsets %d-%d of %s: something else wrote there; restore elsewhere",
			ps.dest, ps.done, pc.first, pc.last, ps.sources[pc.from].Source)
	}
	return e.send(ctx, ps, ps.sources[pc.from].Source, pc)
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

// walk passes the restore's batches of t, in order, to emit. A reader
// goroutine reads ahead what is restored (see read), while this one
// checks, cuts and sends it. With raw, batches are passed as stored, not
// renumbered nor cut by the window: a piece's keep (when set) says which
// of its records are restored, and first, last and records are set only
// when keep is nil.
func (e *engine) walk(ctx context.Context, t *Target, raw bool, emit func(*piece) error) error {
	p := t.Backup
	if len(p.Segments) == 0 || p.From >= p.To {
		return nil
	}
	txns, indexes, err := e.transactions(ctx, t)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	units := make(chan *unit, readAhead)
	go e.read(rctx, t, indexes, txns, units)
	d := &record.Decompressor{}
	var rn record.Renumberer
	var r record.Reader
	for u := range units {
		if u.err == nil {
			u.err = e.unit(t, u, txns, d, &rn, &r, raw, emit)
			u.buf.release()
		}
		if u.err != nil {
			cancel()
			for u := range units { // the reader stops; take back what it read
				if u.buf != nil {
					u.buf.release()
				}
			}
			return fmt.Errorf("restore: %s: %s: %w", t.Source, u.ref.Key, u.err)
		}
	}
	return ctx.Err()
}

// readAhead is how many units a partition's reader may read ahead of its
// worker.
const readAhead = 4

// Unit sizes: an unframed segment is read in units of about unitStored
// bytes (a larger batch is a unit of its own), a framed one in units of
// whole frames decompressing to about unitRaw bytes (one frame, mostly).
const (
	unitStored = sizeStep - repo.ReadSlack
	unitRaw    = repo.DefaultChunkSize
)

// unit is a run of whole frames of one segment read at once, into buf:
// stored is what was read, space the room for its decompressed frames.
type unit struct {
	ref         repo.SegmentRef
	seg         *repo.Segment
	lo, hi      int // entries
	stored, raw int // bytes
	buf         *buffer
	data, space []byte
	err         error // the read failed: nothing else is set
}

// read reads the units of t that hold batches to restore, in order, into
// buffers from the pool, and passes them to units, which it closes at
// the end. Batches not restored are counted here, from the index, and
// not read when their whole unit is not restored.
func (e *engine) read(ctx context.Context, t *Target, indexes []*repo.Segment, txns map[int64][]marker, units chan<- *unit) {
	defer close(units)
	w := t.window
	undecided := 0
	send := func(u *unit) bool {
		// Decompressed frames go first (with the byte BatchRangeInto
		// asks for), the stored bytes after them, at an aligned start.
		space := 0
		if u.raw > 0 {
			space = (u.raw + 1 + bufAlign - 1) &^ (bufAlign - 1)
		}
		buf, err := e.pool.get(ctx, space+u.stored+repo.ReadSlack)
		if err == nil {
			u.buf = buf
			u.space = buf.mem[:0:space]
			u.data, err = e.r.SegmentRangeInto(ctx, u.ref, u.seg, u.lo, u.hi, buf.mem[space:])
			if err != nil {
				buf.release()
			}
		}
		if err != nil {
			u.buf, u.err = nil, err
		}
		select {
		case units <- u:
			return err == nil
		case <-ctx.Done():
			if u.buf != nil {
				u.buf.release()
			}
			return false
		}
	}
	for i, ref := range t.Backup.Segments {
		seg := indexes[i]
		var cur *unit
		stopped := false
		for a := 0; a < len(seg.Entries) && !stopped; {
			// The frame of entries a..b-1: restored if any of them is.
			b, needed := a, false
			for ; b < len(seg.Entries) && seg.Entries[b].FramePos == seg.Entries[a].FramePos; b++ {
				if stopped {
					continue
				}
				switch judge(w, txns, &seg.Entries[b]) {
				case stop:
					stopped = true
				case sendWhole, inspect:
					needed = true
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
			stored, raw := int(seg.Entries[b-1].FramePos+uint64(seg.Entries[b-1].FrameLen)-seg.Entries[a].FramePos), seg.RawLen(a, b)
			full := cur != nil && (seg.Framing == repo.FramingNone && cur.stored+stored > unitStored ||
				seg.Framing != repo.FramingNone && cur.raw+raw > unitRaw)
			if cur != nil && (!needed || full) {
				if !send(cur) {
					return
				}
				cur = nil
			}
			if needed {
				if cur == nil {
					cur = &unit{ref: ref, seg: seg, lo: a}
				}
				cur.hi, cur.stored, cur.raw = b, cur.stored+stored, cur.raw+raw
			}
			a = b
		}
		if cur != nil && !send(cur) {
			return
		}
		if stopped {
			break
		}
	}
	if undecided > 0 {
		e.log.Warn("restore: batches of transactions with no commit or abort marker in the backup were left out",
			"partition", t.Source.String(), "batches", undecided)
	}
}

// unit checks the batches of a unit read and emits those restored.
func (e *engine) unit(t *Target, u *unit, txns map[int64][]marker, d *record.Decompressor, rn *record.Renumberer, r *record.Reader, raw bool, emit func(*piece) error) error {
	w := t.window
	one := func(b record.Batch, v verdict, buf *buffer) error {
		switch {
		case raw && v == inspect:
			return emit(&piece{batch: b, src: b, keep: w.keep, buf: buf})
		case v == sendWhole:
			pc := piece{batch: b, first: b.BaseOffset(), last: b.LastOffset(), records: int64(b.NumRecords()), src: b, buf: buf}
			if !raw && !b.Contiguous() {
				_, nb, err := rn.Renumber(nil, b)
				if err != nil {
					return fmt.Errorf("renumber the batch at offset %d: %w", b.BaseOffset(), err)
				}
				pc.batch, pc.buf = nb, nil
				e.ren.Add(1)
			}
			return emit(&pc)
		case v == inspect:
			return e.inspect(b, w, r, rn, buf, emit)
		}
		return nil // counted when the entries were judged
	}
	var lg legacyRun
	err := u.seg.BatchRangeInto(u.data, u.space, u.lo, u.hi, d, func(ie repo.IndexEntry, b record.Batch) error {
		v := judge(w, txns, &ie)
		if ie.Magic < 2 && (v == sendWhole || v == inspect) {
			return lg.add(b, v, one)
		}
		if err := lg.flush(one); err != nil {
			return err
		}
		return one(b, v, u.buf)
	})
	if err == nil {
		err = lg.flush(one)
	}
	e.legacy.Add(lg.converted)
	return err
}

// legacyRun gathers consecutive legacy messages restored and converts
// them to v2 batches (Kafka 4 accepts no other format): a compressed
// wrapper becomes one batch in its codec, and uncompressed messages are
// gathered into batches of up to legacyBatch bytes, rather than sent one
// message per batch.
type legacyRun struct {
	data      []byte
	v         verdict // inspect if any message of the run is
	d         record.Decompressor
	z         record.Compressor
	converted int64 // messages
}

const legacyBatch = 256 << 10

func (l *legacyRun) add(m []byte, v verdict, one func(record.Batch, verdict, *buffer) error) error {
	if len(l.data) == 0 || v == inspect {
		l.v = v
	}
	l.data = append(l.data, m...)
	if len(l.data) >= legacyBatch {
		return l.flush(one)
	}
	return nil
}

// flush converts the run and passes the batches on (they are the run's
// own memory, not a pooled buffer's).
func (l *legacyRun) flush(one func(record.Batch, verdict, *buffer) error) error {
	if len(l.data) == 0 {
		return nil
	}
	out, n, err := record.ConvertLegacy(nil, l.data, &l.d, &l.z, legacyBatch)
	if err != nil {
		return fmt.Errorf("convert the legacy messages from offset %d: %w", record.Batch(l.data).BaseOffset(), err)
	}
	l.converted += int64(n)
	l.data = l.data[:0]
	it := record.NewIter(out)
	for it.Next() {
		if err := one(it.Batch(), l.v, nil); err != nil {
			return err
		}
	}
	return it.Err()
}

// inspect restores the records of b inside the window w: b itself when
// all are, a re-encoded batch when some are, nothing when none is.
func (e *engine) inspect(b record.Batch, w window, r *record.Reader, rn *record.Renumberer, buf *buffer, emit func(*piece) error) error {
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
		return emit(&piece{batch: b, first: b.BaseOffset(), last: b.LastOffset(), records: total, src: b, buf: buf})
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

// send hands pc's batch to the producer, which holds the buffer it is in
// until it is acknowledged. Its CRC was checked when it was read, or
// computed when it was re-encoded. ps.acks counts it until it is
// answered.
func (e *engine) send(ctx context.Context, ps *partState, source client.TopicPartition, pc *piece) error {
	dest := ps.dest
	b := pc.batch
	if err := e.limit.wait(ctx, len(b)); err != nil {
		return err
	}
	records, size, next := int64(b.NumRecords()), int64(len(b)), pc.last+1
	buf := pc.buf
	if buf != nil {
		buf.retain()
	}
	ps.acks.Add(1)
	err := e.p.SendCheckedBatch(ctx, dest, b, func(_ int64, err error) {
		defer ps.acks.Done()
		if buf != nil {
			buf.release()
		}
		if err != nil {
			ps.failed.Store(true)
			e.fail(fmt.Errorf("restore: %s (from %s): %w", dest, source, err))
			return
		}
		e.batches.Add(1)
		e.records.Add(records)
		e.bytes.Add(size)
		e.obs.Restored(Event{Source: source, Dest: dest, Next: next, Batches: 1, Records: records, Bytes: size})
	})
	if err != nil {
		ps.failed.Store(true)
		ps.acks.Done() // not queued: done will not run
		if buf != nil {
			buf.release()
		}
	}
	return err
}
