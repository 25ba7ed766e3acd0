// Package record reads, builds and rewrites Kafka record batches without
// copying them: the bytes fetched from a broker are the data.
//
// # Nouns
//
//   - Batch: a view of one v2 record batch (magic 2). Header accessors read
//     in place; setters rewrite in place, patching the CRC-32C in O(log n)
//     instead of recomputing it (see rewrite.go).
//   - Iter: walks the batches of a record set (a fetch response's records,
//     a stored segment), stopping quietly at a truncated trailing batch.
//   - Reader and RecordIter: the records of a batch, as sub-slices of the
//     batch or of the Reader's decompression buffer; nothing is allocated
//     per record. A null key, value or header value is nil; an empty one is
//     a non-nil empty slice.
//   - Builder: writes records straight into a caller's buffer in their
//     final layout, then seals the header and CRC.
//   - Decompressor and Compressor: gzip, snappy (raw blocks, and the xerial
//     framing of the Java client on read), lz4 frames and zstd, with reused
//     encoders and decoders and a bound on decompressed size.
//   - ControlRecord: transaction commit and abort markers.
//
// # What is checked where
//
// Iter checks framing (length and magic); Batch.Validate adds the CRC.
// RecordIter checks every record's lengths against its bounds and the
// record count against the header. Bad data is a *CorruptError with the
// byte offset, never a panic.
//
// # Not yet here
//
// Legacy message sets (magic 0 and 1) and their conversion to v2, and
// renumbering records of compacted batches, are separate work.
package record
