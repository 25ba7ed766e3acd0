package producer

// Record layout constants of the append path. A record appended into a
// slot is written in its final RecordBatch v2 form, with two fields at a
// fixed width: the offset delta (the record's index in the batch, known
// only once the claim returns) and the timestamp delta (relative to the
// slot's base timestamp, which a claimer that raced a reopening only learns
// after its claim). Both are zigzag varints written in exactly two bytes,
// non-minimally when the value is small; Kafka's, librdkafka's, franz-go's
// and Python's decoders all accept that, and the tests read such batches
// back through each of them.
const (
	batchHeaderLen = 61

	// The packed claim word of a slot: records claimed in the high bits,
	// bytes claimed (from the slot's start, header included) in the low.
	countShift = 44
	offsetMask = 1<<countShift - 1

	// maxBatchRecords is the most records a two-byte zigzag offset delta
	// can number (0..8191).
	maxBatchRecords = 8192
	// maxFixedDelta bounds a two-byte zigzag timestamp delta, in ms.
	minFixedDelta, maxFixedDelta = -8192, 8191
)

// putFixedVarint writes v (within [minFixedDelta, maxFixedDelta]) as a
// two-byte zigzag varint.
func putFixedVarint(b []byte, v int64) {
	u := uint64(v<<1) ^ uint64(v>>63)
	b[0] = byte(u) | 0x80
	b[1] = byte(u >> 7)
}
