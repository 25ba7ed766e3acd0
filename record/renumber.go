package record

// A Renumberer rewrites batches whose record offsets have gaps (compacted
// data) into batches with contiguous offset deltas 0..n-1, which a broker
// requires on produce. Keys, values, headers and timestamps are kept; a
// compressed batch is decompressed and re-compressed with the same codec.
// A Renumberer is reusable and not safe for concurrent use; steady-state
// renumbering allocates nothing.
type Renumberer struct {
	r    Reader
	b    Builder
	z    Compressor
	hdrs []Header
}

// Contiguous reports whether b's header claims contiguous offsets
// (LastOffsetDelta == NumRecords-1); Renumber checks the records too.
func (b Batch) Contiguous() bool { return int64(b.LastOffsetDelta()) == int64(b.NumRecords())-1 }

// Renumber appends to dst a copy of b whose records have offset deltas 0,
// 1, 2, ... and returns dst and the new batch. If b's records already are
// contiguous it is copied unchanged.
func (rn *Renumberer) Renumber(dst []byte, b Batch) ([]byte, Batch, error) {
	it, err := rn.r.Records(b)
	if err != nil {
		return dst, nil, err
	}
	if b.Contiguous() {
		contiguous := true
		for i := int64(0); it.Next(); i++ {
			if it.Record().Offset != b.BaseOffset()+i {
				contiguous = false
				break
			}
		}
		if err := it.Err(); err != nil {
			return dst, nil, err
		}
		if contiguous {
			start := len(dst)
			dst = append(dst, b...)
			return dst, Batch(dst[start:]), nil
		}
		it = NewRecordIter(b, it.data)
	}
	dst, nb, _, err := rn.rebuild(dst, b, it, nil)
	return dst, nb, err
}

// Filter appends to dst a batch holding only the records of b for which
// keep returns true, with offset deltas 0..n-1, and returns dst, the new
// batch and n. The header fields, keys, values, headers and timestamps
// are kept; a compressed batch is re-compressed with its codec. When no
// record is kept the batch is nil and dst unchanged. keep sees each
// record's original offset and timestamp.
func (rn *Renumberer) Filter(dst []byte, b Batch, keep func(offset, timestamp int64) bool) ([]byte, Batch, int, error) {
	it, err := rn.r.Records(b)
	if err != nil {
		return dst, nil, 0, err
	}
	return rn.rebuild(dst, b, it, keep)
}

// rebuild writes the records of it (b's) that keep accepts (all, for a
// nil keep) as a new batch with contiguous offsets.
func (rn *Renumberer) rebuild(dst []byte, b Batch, it RecordIter, keep func(offset, timestamp int64) bool) ([]byte, Batch, int, error) {
	h := BatchHeader{BaseOffset: b.BaseOffset(), PartitionLeaderEpoch: b.PartitionLeaderEpoch(),
		Codec: b.Codec(), LogAppendTime: b.LogAppendTime(), Transactional: b.IsTransactional(),
		Control: b.IsControl(), ProducerID: b.ProducerID(), ProducerEpoch: b.ProducerEpoch(),
		BaseSequence: b.BaseSequence()}
	rn.b.Reset(dst, h, &rn.z)
	for it.Next() {
		rec := it.Record()
		if keep != nil && !keep(rec.Offset, rec.Timestamp) {
			continue
		}
		rn.hdrs = rn.hdrs[:0]
		hs := rec.Headers()
		for hs.Next() {
			rn.hdrs = append(rn.hdrs, Header{Key: hs.Key(), Value: hs.Value()})
		}
		rn.b.Append(rec.Timestamp, rec.Key, rec.Value, rn.hdrs)
	}
	if err := it.Err(); err != nil {
		return dst, nil, 0, err
	}
	n := rn.b.NumRecords()
	if n == 0 {
		return dst, nil, 0, nil
	}
	dst, nb, err := rn.b.Finish()
	return dst, nb, n, err
}
