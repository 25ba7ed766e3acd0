package restore

import (
	"context"
	"fmt"

	"github.com/ktape/ktape/producer"
	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/record"
)

// keyBatchBytes bounds a batch built by key: records are added to a
// target partition's batch while its size (uncompressed, header included)
// stays within it; a record larger than that makes a batch of its own.
// It is a part of the restore's id (a different size gives different
// batches, which a resumed restore must not mix), and below a broker's
// default message.max.bytes (1 MiB and 12 bytes) even uncompressed.
const keyBatchBytes = 256 << 10

// keyBatchMemory is the most memory the batches being built by key take
// at once: keyBatchBytes per target partition of the largest jobs that
// run at the same time.
func keyBatchMemory(jobs []*job, workers int) int64 {
	var sizes []int64
	for _, j := range jobs {
		if j.hash > 0 {
			sizes = append(sizes, int64(j.hash)*keyBatchBytes)
		}
	}
	// the largest workers of them
	var total int64
	for range min(workers, len(sizes)) {
		k := 0
		for i := range sizes {
			if sizes[i] > sizes[k] {
				k = i
			}
		}
		total += sizes[k]
		sizes[k] = 0
	}
	return total
}

// keyBatch is a target partition's batch being built.
type keyBatch struct {
	b           record.Builder
	open        bool
	codec       record.Codec
	first, last int64 // source offsets of its first and last record
}

// spreadJob restores a topic spread by key: it walks its source
// partitions one after the other, in order, and appends each restored
// record to the batch being built for its target partition. A batch is
// sent when the next record would take it past keyBatchBytes, when the
// next record's source batch has another codec, and at the end of each
// source partition: so each target partition gets the same batches on
// every run, and every batch's records are from one source.
func (e *engine) spreadJob(ctx context.Context, j *job) error {
	n := j.hash
	kbs := make([]keyBatch, n)
	var z record.Compressor
	var r record.Reader
	var hdrs []record.Header
	for i, t := range j.targets {
		flush := func(q int32) error {
			kb := &kbs[q]
			if !kb.open {
				return nil
			}
			kb.open = false
			ps := j.parts[q]
			pc := piece{first: kb.first, last: kb.last, records: int64(kb.b.NumRecords()), from: i}
			if ps.active && ps.walked+pc.records > ps.done { // not in the target yet: sent
				var err error
				if _, pc.batch, err = kb.b.Finish(); err != nil {
					return fmt.Errorf("restore: %s: build a batch for %s: %w", t.Source, ps.dest, err)
				}
			}
			return e.emit(ctx, ps, &pc)
		}
		// A record with a null key stays with the partition of its
		// source partition's number.
		nullKey := t.Source.Partition % n
		err := e.walk(ctx, t, true, func(pc *piece) error {
			b := pc.src
			it, err := r.Records(b)
			if err != nil {
				return fmt.Errorf("batch at offset %d: %w", b.BaseOffset(), err)
			}
			codec := b.Codec()
			var kept, total int64
			for it.Next() {
				rec := it.Record()
				total++
				if pc.keep != nil && !pc.keep(rec.Offset, rec.Timestamp) {
					continue
				}
				kept++
				q := nullKey
				if rec.Key != nil {
					q = producer.PartitionForKey(rec.Key, n)
				}
				hdrs = hdrs[:0]
				hs := rec.Headers()
				for hs.Next() {
					hdrs = append(hdrs, record.Header{Key: hs.Key(), Value: hs.Value()})
				}
				kb := &kbs[q]
				if kb.open && (kb.codec != codec || kb.b.Size()+maxRecordSize(rec, hdrs) > keyBatchBytes) {
					if err := flush(q); err != nil {
						return err
					}
				}
				if !kb.open {
					h := record.NoProducer
					h.Codec = codec
					kb.b.Reset(nil, h, &z)
					kb.open, kb.codec, kb.first = true, codec, rec.Offset
				}
				kb.b.Append(rec.Timestamp, rec.Key, rec.Value, hdrs)
				kb.last = rec.Offset
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("batch at offset %d: %w", b.BaseOffset(), err)
			}
			switch {
			case kept == 0:
				e.outside.Add(1)
				return nil
			case kept < total:
				e.filtered.Add(1)
			}
			e.spread.Add(1)
			return nil
		})
		if err != nil {
			return err
		}
		for q := range n {
			if err := flush(q); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxRecordSize is at most the bytes rec takes in a batch: its fields'
// sizes, with the most a timestamp and an offset delta can take.
func maxRecordSize(rec *record.Record, hdrs []record.Header) int {
	size := 1 + binaryMaxVarint + 5 + bytesSize(rec.Key) + bytesSize(rec.Value) + protocol.VarintLen(int64(len(hdrs)))
	for _, h := range hdrs {
		size += bytesSize(h.Key) + bytesSize(h.Value)
	}
	return protocol.VarintLen(int64(size)) + size
}

const binaryMaxVarint = 10

func bytesSize(b []byte) int {
	if b == nil {
		return 1
	}
	return protocol.VarintLen(int64(len(b))) + len(b)
}
