// Package repo reads and writes ktape's backup repository format
// (FORMAT.md): segments of raw record batches as fetched, their binary
// indexes, and the manifests that make a backup, in a storage.Store. It
// knows nothing of Kafka connections; the backup and restore engines sit
// above it.
package repo

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"
	"sync"

	"github.com/ktape/ktape/record"
)

// Framing is how a segment's batches are stored: as they are, or cut into
// independently compressed frames. The values are Kafka's codec ids.
type Framing uint8

const (
	FramingNone Framing = 0
	FramingLZ4  Framing = 3
	FramingZstd Framing = 4
)

func (f Framing) String() string {
	switch f {
	case FramingNone:
		return "none"
	case FramingLZ4:
		return "lz4"
	case FramingZstd:
		return "zstd"
	}
	return fmt.Sprintf("framing(%d)", uint8(f))
}

// AutoFraming is the "auto" choice for a segment starting with b: zstd
// frames when the producer did not compress the batches, none when it did
// (compressing them again costs CPU and saves nothing).
func AutoFraming(b record.Batch) Framing {
	codec := b.Codec()
	if record.PeekMagic(b) < 2 && len(b) > 17 {
		codec = record.Codec(b[17] & 7) // a legacy message's attributes
	}
	if codec == record.None {
		return FramingZstd
	}
	return FramingNone
}

// DefaultChunkSize is the most uncompressed bytes in one frame of a framed
// segment; a larger batch is a frame of its own.
const DefaultChunkSize = 4 << 20

// IndexEntry describes one batch of a segment.
type IndexEntry struct {
	FramePos   uint64 // stored position of the frame holding the batch (the batch's own when plain)
	FrameLen   uint32 // stored length of that frame (= Length when plain)
	InFrame    uint32 // position of the batch in its frame's uncompressed bytes (0 when plain)
	Length     uint32 // the batch's length in bytes
	DataPos    uint64 // position of the batch in the uncompressed stream (not stored: the sum of the lengths before)
	BaseOffset int64
	LastOffset int64
	FirstTime  int64
	MaxTime    int64
	ProducerID int64
	Attributes int16
	Magic      int8
}

// Segment is what a SegmentWriter wrote.
type Segment struct {
	Framing   Framing
	SHA256    [32]byte // of the stored bytes, or of the sealed object in an encrypted repository
	StoredLen uint64
	SealedLen uint64 // the sealed object's length in an encrypted repository, else 0
	DataLen   uint64
	Entries   []IndexEntry
}

// Name is the segment's object name without extension:
// <base offset, 20 digits>-<first 16 hex digits of its SHA-256>.
func (s *Segment) Name() string {
	base := int64(0)
	if len(s.Entries) > 0 {
		base = s.Entries[0].BaseOffset
	}
	return fmt.Sprintf("%020d-%s", base, hex.EncodeToString(s.SHA256[:8]))
}

// A SegmentWriter writes batches of one partition, in offset order, as a
// segment to w, and builds its index.
type SegmentWriter struct {
	w         io.Writer
	sha       hash.Hash
	framing   Framing
	chunkSize int
	chunk     []byte // uncompressed batches of the frame being built
	chunkFrom int    // index of the chunk's first entry
	seg       Segment
	err       error
	noHash    bool // DeferHash
}

// NewSegmentWriter starts a segment with the given framing; chunkSize 0
// is DefaultChunkSize.
func NewSegmentWriter(w io.Writer, f Framing, chunkSize int) (*SegmentWriter, error) {
	switch f {
	case FramingNone, FramingLZ4, FramingZstd:
	default:
		return nil, fmt.Errorf("repo: unknown segment framing %d", uint8(f))
	}
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}
	return &SegmentWriter{w: w, sha: sha256.New(), framing: f, chunkSize: chunkSize, seg: Segment{Framing: f}}, nil
}

// ReuseEntries has the writer build the segment's index in e's space (its
// length is ignored): for a caller that recycles the Entries of segments
// it is done with, so that building an index leaves no garbage. Call it
// before the first Append.
func (s *SegmentWriter) ReuseEntries(e []IndexEntry) { s.seg.Entries = e[:0] }

// DeferHash leaves the segment's SHA-256 to the caller, who must call
// Segment.Hash on the stored bytes before naming or storing the segment:
// the goroutine that stores a segment can hash it while the one that
// writes segments goes on to the next. Call it before the first Append.
func (s *SegmentWriter) DeferHash() { s.noHash = true }

// Append adds a batch (checked: its framing and CRC-32C) after the ones
// before it. Only v2 batches are accepted.
func (s *SegmentWriter) Append(b record.Batch) error {
	return s.append(b, true)
}

// AppendChecked is Append for a batch whose CRC-32C the caller has
// checked already, as a client.Fetcher does for every batch it delivers:
// it checks the batch's framing, not its CRC, so that the backup path
// reads each batch's bytes for its CRC once.
func (s *SegmentWriter) AppendChecked(b record.Batch) error {
	return s.append(b, false)
}

func (s *SegmentWriter) append(b record.Batch, crc bool) error {
	if s.err != nil {
		return s.err
	}
	var err error
	if crc {
		err = b.Validate()
	} else {
		err = b.ValidateFraming()
	}
	if err != nil {
		if len(b) < record.HeaderSize {
			return fmt.Errorf("repo: segment: batch: %w", err)
		}
		return fmt.Errorf("repo: segment: batch at offset %d: %w", b.BaseOffset(), err)
	}
	return s.add(b, IndexEntry{
		BaseOffset: b.BaseOffset(), LastOffset: b.LastOffset(),
		FirstTime: b.BaseTimestamp(), MaxTime: b.MaxTimestamp(), ProducerID: b.ProducerID(),
		Attributes: b.Attributes(), Magic: b.Magic(),
	})
}

// AppendLegacy adds one top-level entry of a legacy message set (magic 0
// or 1), stored as it is, after checking it (its CRC-32s and offsets; d
// decompresses a wrapper for that). It returns what it found, for the
// caller's counts.
func (s *SegmentWriter) AppendLegacy(entry []byte, d *record.Decompressor) (record.LegacyEntry, error) {
	if s.err != nil {
		return record.LegacyEntry{}, s.err
	}
	le, err := record.ParseLegacyEntry(entry, d)
	if err != nil {
		return le, fmt.Errorf("repo: segment: legacy message at offset %d: %w", int64(binary.BigEndian.Uint64(entry)), err)
	}
	return le, s.add(entry, legacyIndexEntry(le))
}

// AppendLegacyChecked is AppendLegacy for an entry the caller has checked
// and described with record.ParseLegacyEntry already, so that it is
// decompressed once.
func (s *SegmentWriter) AppendLegacyChecked(entry []byte, le record.LegacyEntry) error {
	if s.err != nil {
		return s.err
	}
	return s.add(entry, legacyIndexEntry(le))
}

func legacyIndexEntry(le record.LegacyEntry) IndexEntry {
	return IndexEntry{
		BaseOffset: le.BaseOffset, LastOffset: le.LastOffset, FirstTime: le.FirstTime, MaxTime: le.MaxTime,
		ProducerID: -1, Attributes: le.Attributes, Magic: le.Magic,
	}
}

// add appends a checked entry's bytes, described by e (which add
// completes with its place in the segment).
func (s *SegmentWriter) add(b []byte, e IndexEntry) error {
	if n := len(s.seg.Entries); n > 0 && e.BaseOffset <= s.seg.Entries[n-1].LastOffset {
		return fmt.Errorf("repo: segment: batch at offset %d after one ending at %d: offsets must increase", e.BaseOffset, s.seg.Entries[n-1].LastOffset)
	}
	e.DataPos, e.Length = s.seg.DataLen, uint32(len(b))
	if s.framing == FramingNone {
		e.FramePos, e.FrameLen = s.seg.StoredLen, uint32(len(b))
		s.seg.Entries = append(s.seg.Entries, e)
		s.seg.DataLen += uint64(len(b))
		return s.write(b)
	}
	if len(s.chunk) > 0 && len(s.chunk)+len(b) > s.chunkSize {
		if err := s.flushFrame(); err != nil {
			return err
		}
	}
	e.InFrame = uint32(len(s.chunk))
	s.seg.Entries = append(s.seg.Entries, e)
	s.seg.DataLen += uint64(len(b))
	if s.chunk == nil {
		select {
		case c := <-frameBufs:
			s.chunk = c
		default:
		}
	}
	s.chunk = append(s.chunk, b...)
	return nil
}

func (s *SegmentWriter) write(p []byte) error {
	if _, err := s.w.Write(p); err != nil {
		s.err = fmt.Errorf("repo: segment: write: %w", err)
		return s.err
	}
	if !s.noHash {
		s.sha.Write(p)
	}
	s.seg.StoredLen += uint64(len(p))
	return nil
}

// flushFrame compresses the pending chunk as one frame.
func (s *SegmentWriter) flushFrame() error {
	if len(s.chunk) == 0 {
		return nil
	}
	codec := record.Zstd
	if s.framing == FramingLZ4 {
		codec = record.LZ4
	}
	fz := framers.Get().(*framer)
	defer framers.Put(fz)
	out, err := fz.z.Compress(fz.out[:0], codec, s.chunk)
	if err != nil {
		s.err = fmt.Errorf("repo: segment: %w", err)
		return s.err
	}
	fz.out = out
	pos := s.seg.StoredLen
	for i := s.chunkFrom; i < len(s.seg.Entries); i++ {
		s.seg.Entries[i].FramePos, s.seg.Entries[i].FrameLen = pos, uint32(len(out))
	}
	s.chunk, s.chunkFrom = s.chunk[:0], len(s.seg.Entries)
	return s.write(out)
}

// frameBufs keeps the frame buffers of closed writers for the next ones:
// a backup opens and closes writers all run long, and each would grow a
// buffer to a frame's size again, leaving the last for the garbage
// collector (with zstd frames, 60% of the bytes backed up). A few are
// kept: more would be memory that no budget counts.
var frameBufs = make(chan []byte, 4)

// Buffered is the memory the writer holds for the frame being built:
// with many segments open at once, callers count it against their budget.
func (s *SegmentWriter) Buffered() int { return cap(s.chunk) }

// A framer is an encoder with its output buffer. Writers share them
// through a pool: an encoder's state is megabytes, and a backup may have
// thousands of segments open, each compressing only now and then.
type framer struct {
	z   record.Compressor
	out []byte
}

var framers = sync.Pool{New: func() any { return new(framer) }}

// Close writes what is pending and returns the segment's description.
func (s *SegmentWriter) Close() (*Segment, error) {
	if err := s.flushFrame(); err != nil {
		return nil, err
	}
	if s.err != nil {
		return nil, s.err
	}
	if !s.noHash {
		copy(s.seg.SHA256[:], s.sha.Sum(nil))
	}
	if s.chunk != nil {
		select {
		case frameBufs <- s.chunk[:0]:
		default:
		}
		s.chunk = nil
	}
	s.err = errors.New("repo: segment: closed")
	return &s.seg, nil
}

// Hash sets the segment's SHA-256 from its stored bytes, given in pieces
// in order: for a segment written with DeferHash.
func (s *Segment) Hash(stored [][]byte) {
	h := sha256.New()
	for _, p := range stored {
		h.Write(p)
	}
	copy(s.SHA256[:], h.Sum(nil))
}

// Index file layout (FORMAT.md).
const (
	indexMagic      = "KTIX"
	indexVersion    = 1
	indexHeaderLen  = 32
	indexEntryLen   = 64
	indexTrailerLen = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendIndex appends the segment's .idx bytes to dst.
func (s *Segment) AppendIndex(dst []byte) []byte {
	dst = slices.Grow(dst, indexHeaderLen+len(s.Entries)*indexEntryLen+indexTrailerLen)
	start := len(dst)
	dst = append(dst, indexMagic...)
	dst = binary.BigEndian.AppendUint16(dst, indexVersion)
	dst = append(dst, byte(s.Framing), 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s.Entries)))
	dst = binary.BigEndian.AppendUint64(dst, s.StoredLen)
	dst = binary.BigEndian.AppendUint64(dst, s.DataLen)
	dst = binary.BigEndian.AppendUint32(dst, 0)
	for _, e := range s.Entries {
		dst = binary.BigEndian.AppendUint64(dst, e.FramePos)
		dst = binary.BigEndian.AppendUint32(dst, e.FrameLen)
		dst = binary.BigEndian.AppendUint32(dst, e.InFrame)
		dst = binary.BigEndian.AppendUint32(dst, e.Length)
		dst = binary.BigEndian.AppendUint16(dst, uint16(e.Attributes))
		dst = append(dst, byte(e.Magic), 0)
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.BaseOffset))
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.LastOffset))
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.FirstTime))
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.MaxTime))
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.ProducerID))
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// IndexError says what is wrong with an index, and where.
type IndexError struct {
	Offset int // byte position in the .idx
	Reason string
}

func (e *IndexError) Error() string {
	return fmt.Sprintf("repo: index: at byte %d: %s", e.Offset, e.Reason)
}

// ParseIndex reads a .idx, checking its magic, version, size and CRC, and
// that its entries describe a consistent segment. The entries' SHA-256 is
// not in the index: it is in the segment's name and the manifest.
func ParseIndex(b []byte) (*Segment, error) {
	if len(b) < indexHeaderLen+indexTrailerLen {
		return nil, &IndexError{len(b), fmt.Sprintf("truncated: %d bytes, a header and trailer take %d", len(b), indexHeaderLen+indexTrailerLen)}
	}
	if string(b[:4]) != indexMagic {
		return nil, &IndexError{0, fmt.Sprintf("magic %q, want %q", b[:4], indexMagic)}
	}
	if v := binary.BigEndian.Uint16(b[4:]); v != indexVersion {
		return nil, &IndexError{4, fmt.Sprintf("version %d: this ktape reads version %d", v, indexVersion)}
	}
	n := binary.BigEndian.Uint32(b[8:])
	if want := uint64(indexHeaderLen) + uint64(n)*indexEntryLen + indexTrailerLen; uint64(len(b)) != want {
		return nil, &IndexError{8, fmt.Sprintf("%d entries need %d bytes, the index has %d", n, want, len(b))}
	}
	body := b[:len(b)-indexTrailerLen]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[len(body):]); got != want {
		return nil, &IndexError{len(body), fmt.Sprintf("CRC-32C %08x, the trailer says %08x", got, want)}
	}
	s := &Segment{
		Framing:   Framing(b[6]),
		StoredLen: binary.BigEndian.Uint64(b[12:]),
		DataLen:   binary.BigEndian.Uint64(b[20:]),
		Entries:   make([]IndexEntry, n),
	}
	switch s.Framing {
	case FramingNone, FramingLZ4, FramingZstd:
	default:
		return nil, &IndexError{6, fmt.Sprintf("unknown framing %d", b[6])}
	}
	var dataPos, framesEnd uint64
	lastOffset := int64(-1)
	for i := range s.Entries {
		at := indexHeaderLen + i*indexEntryLen
		p := b[at:]
		e := IndexEntry{
			FramePos: binary.BigEndian.Uint64(p), FrameLen: binary.BigEndian.Uint32(p[8:]),
			InFrame: binary.BigEndian.Uint32(p[12:]), Length: binary.BigEndian.Uint32(p[16:]),
			Attributes: int16(binary.BigEndian.Uint16(p[20:])), Magic: int8(p[22]),
			BaseOffset: int64(binary.BigEndian.Uint64(p[24:])), LastOffset: int64(binary.BigEndian.Uint64(p[32:])),
			FirstTime: int64(binary.BigEndian.Uint64(p[40:])), MaxTime: int64(binary.BigEndian.Uint64(p[48:])),
			ProducerID: int64(binary.BigEndian.Uint64(p[56:])),
			DataPos:    dataPos,
		}
		s.Entries[i] = e
		switch {
		case e.Magic < 0 || e.Magic > 2:
			return nil, &IndexError{at + 22, fmt.Sprintf("entry %d: magic %d", i, e.Magic)}
		case e.Magic == 2 && e.Length < 61:
			return nil, &IndexError{at, fmt.Sprintf("entry %d: a %d-byte batch is shorter than a batch header", i, e.Length)}
		case e.Magic < 2 && e.Length < 26:
			return nil, &IndexError{at, fmt.Sprintf("entry %d: a %d-byte legacy message is shorter than a message header", i, e.Length)}
		case e.BaseOffset <= lastOffset || e.LastOffset < e.BaseOffset:
			return nil, &IndexError{at, fmt.Sprintf("entry %d: offsets %d-%d after %d", i, e.BaseOffset, e.LastOffset, lastOffset)}
		case e.FramePos+uint64(e.FrameLen) > s.StoredLen:
			return nil, &IndexError{at, fmt.Sprintf("entry %d: frame %d+%d beyond the segment's %d bytes", i, e.FramePos, e.FrameLen, s.StoredLen)}
		case s.Framing == FramingNone && (e.FramePos != e.DataPos || e.FrameLen != e.Length || e.InFrame != 0):
			return nil, &IndexError{at, fmt.Sprintf("entry %d: a plain segment's frame must be the batch", i)}
		case s.Framing != FramingNone && i > 0 && e.FramePos == s.Entries[i-1].FramePos && e.InFrame != s.Entries[i-1].InFrame+s.Entries[i-1].Length:
			return nil, &IndexError{at, fmt.Sprintf("entry %d: at byte %d of its frame, the batch before ended at %d", i, e.InFrame, s.Entries[i-1].InFrame+s.Entries[i-1].Length)}
		case s.Framing != FramingNone && (i == 0 || e.FramePos != s.Entries[i-1].FramePos) && (e.InFrame != 0 || e.FramePos != framesEnd):
			return nil, &IndexError{at, fmt.Sprintf("entry %d: a new frame must start at byte %d with the batch, not at %d+%d", i, framesEnd, e.FramePos, e.InFrame)}
		}
		dataPos += uint64(e.Length)
		lastOffset = e.LastOffset
		framesEnd = e.FramePos + uint64(e.FrameLen)
	}
	if framesEnd != s.StoredLen {
		return nil, &IndexError{12, fmt.Sprintf("frames end at byte %d, the header says the segment has %d", framesEnd, s.StoredLen)}
	}
	if dataPos != s.DataLen {
		return nil, &IndexError{20, fmt.Sprintf("entries hold %d data bytes, the header says %d", dataPos, s.DataLen)}
	}
	return s, nil
}

// CorruptError locates damage in a segment.
type CorruptError struct {
	Pos    uint64 // stored byte position (of the frame, when framed)
	Batch  int    // index entry, -1 for the whole segment
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Batch < 0 {
		return fmt.Sprintf("repo: segment: at byte %d: %s", e.Pos, e.Reason)
	}
	return fmt.Sprintf("repo: segment: batch %d, at stored byte %d: %s", e.Batch, e.Pos, e.Reason)
}

// CheckSum compares a segment's stored bytes with its description: length
// and SHA-256.
func (s *Segment) CheckSum(stored []byte, sha [32]byte) error {
	if s.SealedLen != 0 {
		if uint64(len(stored)) != s.SealedLen {
			return &CorruptError{uint64(len(stored)), -1, fmt.Sprintf("%d bytes sealed, the manifest says %d", len(stored), s.SealedLen)}
		}
	} else if uint64(len(stored)) != s.StoredLen {
		return &CorruptError{uint64(len(stored)), -1, fmt.Sprintf("%d bytes, the index says %d", len(stored), s.StoredLen)}
	}
	if got := sha256.Sum256(stored); got != sha {
		return &CorruptError{0, -1, fmt.Sprintf("SHA-256 %x, want %x", got, sha)}
	}
	return nil
}

// checkBatch returns entry i's batch from the uncompressed bytes of its
// frame, checked against its framing, CRC-32C and index entry.
func (s *Segment) checkBatch(frame []byte, i int, d *record.Decompressor) (record.Batch, error) {
	e := s.Entries[i]
	if uint64(e.InFrame)+uint64(e.Length) > uint64(len(frame)) {
		return nil, &CorruptError{e.FramePos, i, fmt.Sprintf("batch %d+%d runs past its frame's %d bytes", e.InFrame, e.Length, len(frame))}
	}
	b := record.Batch(frame[e.InFrame : e.InFrame+e.Length])
	if e.Magic < 2 {
		le, err := record.ParseLegacyEntry(b, d)
		if err != nil {
			return nil, &CorruptError{e.FramePos, i, err.Error()}
		}
		if got := legacyIndexEntry(le); got.BaseOffset != e.BaseOffset || got.LastOffset != e.LastOffset || got.FirstTime != e.FirstTime ||
			got.MaxTime != e.MaxTime || got.ProducerID != e.ProducerID || got.Attributes != e.Attributes || got.Magic != e.Magic {
			return nil, &CorruptError{e.FramePos, i, fmt.Sprintf("legacy message at offset %d does not match its index entry (offset %d)", le.LastOffset, e.LastOffset)}
		}
		return b, nil
	}
	if err := b.Validate(); err != nil {
		return nil, &CorruptError{e.FramePos, i, err.Error()}
	}
	if b.BaseOffset() != e.BaseOffset || b.LastOffset() != e.LastOffset || b.MaxTimestamp() != e.MaxTime ||
		b.BaseTimestamp() != e.FirstTime || b.ProducerID() != e.ProducerID || b.Attributes() != e.Attributes || b.Magic() != e.Magic {
		return nil, &CorruptError{e.FramePos, i, fmt.Sprintf("batch at offset %d does not match its index entry (offset %d)", b.BaseOffset(), e.BaseOffset)}
	}
	return b, nil
}

// Batch returns entry i's batch, checked, given the stored bytes of its
// frame (FrameLen bytes read from FramePos): what a reader that
// range-reads one frame needs. A framed segment's frame is decompressed
// into dst's space.
func (s *Segment) Batch(dst, stored []byte, i int, d *record.Decompressor) (record.Batch, error) {
	if i < 0 || i >= len(s.Entries) {
		return nil, fmt.Errorf("repo: segment: no entry %d (of %d)", i, len(s.Entries))
	}
	e := s.Entries[i]
	if len(stored) != int(e.FrameLen) {
		return nil, &CorruptError{e.FramePos, i, fmt.Sprintf("frame read is %d bytes, the index says %d", len(stored), e.FrameLen)}
	}
	frame := stored
	if s.Framing != FramingNone {
		codec := record.Zstd
		if s.Framing == FramingLZ4 {
			codec = record.LZ4
		}
		var err error
		if frame, err = d.Decompress(dst[:0], codec, stored); err != nil {
			return nil, &CorruptError{e.FramePos, i, fmt.Sprintf("frame does not decompress: %v", err)}
		}
	}
	return s.checkBatch(frame, i, d)
}

// Batches calls fn with each batch of the segment, in order, checking that
// each is whole, has a valid CRC-32C and matches its index entry. The
// batch is borrowed: valid until fn returns. d bounds decompression.
func (s *Segment) Batches(stored []byte, d *record.Decompressor, fn func(e IndexEntry, b record.Batch) error) error {
	return s.BatchRange(stored, 0, len(s.Entries), d, fn)
}

// FrameRange widens the entries lo..hi-1 to whole frames: the entries to
// read so that every frame read is used whole, and the stored bytes they
// span (for a range read).
func (s *Segment) FrameRange(lo, hi int) (wlo, whi int, pos, length uint64) {
	for lo > 0 && s.Entries[lo-1].FramePos == s.Entries[lo].FramePos {
		lo--
	}
	for hi < len(s.Entries) && s.Entries[hi].FramePos == s.Entries[hi-1].FramePos {
		hi++
	}
	first, last := s.Entries[lo], s.Entries[hi-1]
	return lo, hi, first.FramePos, last.FramePos + uint64(last.FrameLen) - first.FramePos
}

// BatchRange is Batches for entries lo..hi-1 only (whole frames, see
// FrameRange), given part: the stored bytes from entry lo's frame on.
func (s *Segment) BatchRange(part []byte, lo, hi int, d *record.Decompressor, fn func(e IndexEntry, b record.Batch) error) error {
	return s.batchRange(part, nil, lo, hi, d, fn)
}

// BatchRangeInto is BatchRange decompressing a framed segment's frames one
// after another into space, whose capacity should be RawLen(lo, hi)+1 (a
// streaming decompressor needs a byte of room to see its input end): the
// batches fn is given then stay valid as long as part and space do, and
// can be handed on without a copy. (With too little space the frames
// that do not fit are decompressed into new memory.)
func (s *Segment) BatchRangeInto(part, space []byte, lo, hi int, d *record.Decompressor, fn func(e IndexEntry, b record.Batch) error) error {
	if space == nil {
		space = []byte{}
	}
	return s.batchRange(part, space, lo, hi, d, fn)
}

// RawLen is the bytes the frames of entries lo..hi-1 (whole frames, see
// FrameRange) decompress to; 0 for an unframed segment, whose batches are
// its stored bytes.
func (s *Segment) RawLen(lo, hi int) int {
	if s.Framing == FramingNone {
		return 0
	}
	n := 0
	for i := lo; i < hi; i++ {
		if i+1 == hi || s.Entries[i+1].FramePos != s.Entries[i].FramePos {
			n += int(s.Entries[i].InFrame + s.Entries[i].Length)
		}
	}
	return n
}

// batchRange is BatchRange; with a non-nil space, frames are decompressed
// into it in turn rather than into one reused buffer.
func (s *Segment) batchRange(part, space []byte, lo, hi int, d *record.Decompressor, fn func(e IndexEntry, b record.Batch) error) error {
	if lo < 0 || hi > len(s.Entries) || lo > hi {
		return fmt.Errorf("repo: segment: entries %d..%d of %d", lo, hi, len(s.Entries))
	}
	if lo == hi {
		return nil
	}
	base := s.Entries[lo].FramePos
	var frame []byte
	framePos := uint64(1<<64 - 1)
	used := 0 // bytes of the current frame accounted for by entries
	for i := lo; i < hi; i++ {
		e := s.Entries[i]
		if e.FramePos < base || e.FramePos-base+uint64(e.FrameLen) > uint64(len(part)) {
			return &CorruptError{e.FramePos, i, fmt.Sprintf("frame of %d bytes runs past the bytes read (%d from %d)", e.FrameLen, len(part), base)}
		}
		stored := part[e.FramePos-base:]
		if s.Framing == FramingNone {
			frame = stored[:e.FrameLen]
		} else if e.FramePos != framePos {
			if used != len(frame) {
				return &CorruptError{framePos, i - 1, fmt.Sprintf("frame holds %d bytes, its batches %d", len(frame), used)}
			}
			used = 0
			codec := record.Zstd
			if s.Framing == FramingLZ4 {
				codec = record.LZ4
			}
			dst := frame[:0]
			if space != nil {
				dst = space[:0]
			}
			var err error
			if frame, err = d.Decompress(dst, codec, stored[:e.FrameLen]); err != nil {
				return &CorruptError{e.FramePos, i, fmt.Sprintf("frame does not decompress: %v", err)}
			}
			if space != nil && len(frame) > 0 && cap(space) > 0 && &frame[0] == &space[:1][0] {
				space = space[len(frame):cap(space)]
			}
			framePos = e.FramePos
		}
		if uint64(e.InFrame)+uint64(e.Length) > uint64(len(frame)) {
			return &CorruptError{e.FramePos, i, fmt.Sprintf("batch %d+%d runs past its frame's %d bytes", e.InFrame, e.Length, len(frame))}
		}
		b, err := s.checkBatch(frame, i, d)
		if err != nil {
			return err
		}
		used += int(e.Length)
		if err := fn(e, b); err != nil {
			return err
		}
	}
	if s.Framing != FramingNone && used != len(frame) {
		return &CorruptError{framePos, hi - 1, fmt.Sprintf("frame holds %d bytes, its batches %d", len(frame), used)}
	}
	return nil
}
